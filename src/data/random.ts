/** @file A small seeded PRNG (mulberry32) and the shuffles built on it, so every run is reproducible. */

/** A source of uniform numbers in [0, 1); each call advances its state. */
export type Rng = () => number;

/**
 * Returns the mulberry32 generator for `seed`.
 *
 * Chosen over `Math.random` for reproducibility and over xoshiro for size: 32 bits of state
 * are plenty for shuffling datasets and drawing samples, not for cryptography.
 *
 * @param seed - Any number; it is reduced to an unsigned 32-bit integer (`seed >>> 0`), so
 *   `1.5` and `1` give the same stream, as do `-1` and `2 ** 32 - 1`.
 */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Draws an integer uniformly from `[0, n)`.
 *
 * NOTE: `floor(u * n)` has a bias of at most n / 2^32 per value, negligible for dataset sizes.
 */
export function randomInt(rng: Rng, n: number): number {
  return Math.floor(rng() * n);
}

/** Shuffles `items` in place (Fisher-Yates) and returns it. */
export function shuffleInPlace<T extends { length: number; [index: number]: unknown }>(
  items: T,
  rng: Rng,
): T {
  for (let i = items.length - 1; i > 0; i--) {
    const j = randomInt(rng, i + 1);
    const held = items[i]!;
    items[i] = items[j]!;
    items[j] = held;
  }
  return items;
}

/** Returns a seeded random permutation of `0 .. n-1`; the same seed gives the same order. */
export function permutation(n: number, seed: number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  return shuffleInPlace(order, mulberry32(seed));
}
