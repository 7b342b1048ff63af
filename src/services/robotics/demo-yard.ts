/**
 * The built-in sim world used when `[robotics] world_file` is not set: a 12 × 8 m yard with
 * a wall segment, a pillar and a crate between the dock and the far corner.
 */
export const DEMO_YARD = Object.freeze({
  bounds: { minX: 0, minY: 0, maxX: 12, maxY: 8 },
  obstacles: [
    { type: 'box', minX: 5, minY: 0, maxX: 5.4, maxY: 5 },
    { type: 'circle', x: 8.5, y: 5.5, radius: 0.5 },
    { type: 'box', minX: 2.5, minY: 5.5, maxX: 3.5, maxY: 6.5 },
  ],
  dock: { x: 1, y: 1, yaw: 0 },
});
