/** @file The accuracy definitions on hand-made logits. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { scoreTasks } from '../../src/eval/metrics.js';

test('one source over all classes: task accuracy is the argmax within the task, joint the best per-task softmax', () => {
  // Classes 0,1 (task 0) and 2,3 (task 1); three images with labels 0, 2, 3.
  const logits = Float32Array.from(
    [
      [5, 1, 9, 0], // label 0: within task 0 correct; joint: softmax(5,1)=.982 vs softmax(9,0)=.9999 -> predicts 2 (wrong)
      [0, 0, 3, 1], // label 2: task correct; joint: .5 vs .88 -> 2 (right)
      [9, 0, 1, 2], // label 3: task correct; joint: .9999 vs .73 -> 0 (wrong)
    ].flat(),
  );
  const result = scoreTasks([{ labels: [0, 1, 2, 3], logits }], Uint8Array.from([0, 2, 3]), [
    [0, 1],
    [2, 3],
  ]);
  assert.deepEqual(result.tasks, [1, 1]);
  assert.equal(result.joint, 1 / 3);
  assert.equal(result.avg, 1);
  assert.equal(result.n, 3);
});

test('disjoint heads of unequal size (3 + 1 classes) and images outside the tasks', () => {
  const headA = { labels: [0, 1, 2], logits: Float32Array.from([3, 0, 0, 0, 0, 3, 0, 0, 0]) };
  const headB = { labels: [3], logits: Float32Array.from([0, 5, 0]) };
  // Labels: 0 (A right), 3 (B's single class), 9 (in no task: ignored).
  const result = scoreTasks([headA, headB], Uint8Array.from([0, 3, 9]), [[0, 1, 2], [3]]);
  assert.equal(result.n, 2);
  assert.deepEqual(result.tasks, [1, 1]);
  // Image 0: A's softmax(3,0,0)=.91 vs B's softmax(0)=1 -> predicts 3 (wrong); image 1: B's 1.0 wins ties? A's .33 < 1 -> 3 right.
  assert.equal(result.joint, 0.5);
});

test('one head per task: task k is scored by head k alone, after masking the other tasks', () => {
  // Head A was trained on classes 0,1; head B on 2,3. On task A's image, head B's logits for
  // classes 0,1 are huge and would flip an average of the heads; the reference ignores them.
  const headA = { labels: [0, 1, 2, 3], logits: Float32Array.from([2, 1, 50, 50]) };
  const headB = { labels: [0, 1, 2, 3], logits: Float32Array.from([0, 40, 1, 3]) };
  const result = scoreTasks([headA, headB], Uint8Array.from([0]), [
    [0, 1],
    [2, 3],
  ]);
  assert.deepEqual(result.tasks, [1, 0]);
  // Joint: A masked to classes 0,1 -> softmax (.73, .27); B masked to 2,3 -> (.12, .88); class 3 wins.
  assert.equal(result.joint, 0);
});

test('joint ties in float32 (two saturated tasks) go to the lower class index, as in PyTorch', () => {
  // Both tasks' softmax round to 1.0 in float32 (a margin of 30 in logits), so 2 + p ties at
  // 3.0 and the lower index wins: class 1 for an image labelled 1, class 1 again for label 2.
  const logits = Float32Array.from([0, 30, 31, 0, 0, 30, 31, 0]);
  const result = scoreTasks([{ labels: [0, 1, 2, 3], logits }], Uint8Array.from([1, 2]), [
    [0, 1],
    [2, 3],
  ]);
  assert.equal(result.joint, 0.5);
  assert.deepEqual(result.tasks, [1, 1]);
});

test('EXPECTED FAILURE - several outputs but not one per task is a caller bug', () => {
  const head = { labels: [0, 1], logits: Float32Array.from([1, 0]) };
  assert.throws(
    () => scoreTasks([head, head, head], Uint8Array.from([0]), [[0], [1]]),
    /3 sources/,
  );
});
