/**
 * @file Joint and per-task accuracy from logits, by the reference implementation's rules
 * (`evaluate_logits_alltasks` in gstoica27/ZipIt): one logit vector, or one head per task.
 */

/**
 * One source of class scores: a model output (or a head of a multi-head model). `labels[i]`
 * is the class label of logit i.
 */
export interface ScoreSource {
  readonly labels: readonly number[];
  /** [count, labels.length] row-major logits. */
  readonly logits: Float32Array;
}

/** Accuracies: joint over all tasks' classes, per task, and the task average. */
export interface Accuracy {
  readonly joint: number;
  readonly tasks: readonly number[];
  readonly avg: number;
  readonly n: number;
}

const f32 = Math.fround;

/**
 * Softmax over `values` in float32 arithmetic, as PyTorch's CPU kernel computes it (exp of the
 * shifted values, their sum, one reciprocal, a product), written into `out`.
 *
 * NOTE: float32 matters here. The reference adds 2 to every probability before its argmax, and
 * at 2 + p float32 keeps only ~2.4e-7 of resolution, so near-certain classes of two tasks tie
 * and the lower class index wins. Emulating that reproduces its scores to the image.
 */
function softmax32(values: Float64Array, out: Float64Array): void {
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i]! > max) max = values[i]!;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const e = f32(Math.exp(f32(values[i]! - max)));
    out[i] = e;
    sum = f32(sum + e);
  }
  const inverse = f32(1 / sum);
  for (let i = 0; i < values.length; i++) out[i] = f32(out[i]! * inverse);
}

/** Index of the first maximum (PyTorch's argmax on the CPU). */
function argmax(values: Float64Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Of `classes` (in their order), the one with the highest `scores[c]`; the first on ties. */
function argmaxAmong(scores: Float64Array, classes: readonly number[]): number {
  let best = classes[0]!;
  for (const c of classes) if (scores[c]! > scores[best]!) best = c;
  return best;
}

/** Writes image `image`'s logits of `source` into a full class vector (-inf where absent). */
function fill(source: ScoreSource, image: number, into: Float64Array): void {
  into.fill(-Infinity);
  const width = source.labels.length;
  for (let i = 0; i < width; i++) into[source.labels[i]!] = source.logits[image * width + i]!;
}

/**
 * Scores images against tasks (disjoint class sets) by the reference's rules. Only images whose
 * label is in some task count.
 *
 * One source (a single-output model):
 * - task t: on task t's images, the argmax of the logits among task t's classes;
 * - joint: each task's classes replaced by their softmax (plus 2, so any task class beats a
 *   class outside every task), then the argmax over all classes.
 *
 * One source per task (an ensemble, or a multi-head model: source t is head t, trained on task
 * t): each head first loses the classes of the other tasks (set to -inf), then
 * - task t: on task t's images, the argmax of head t alone among task t's classes;
 * - joint: every head's softmax over all classes, per class the maximum over heads (plus 2 for
 *   the tasks' classes), then the argmax.
 *
 * @throws Error when there are several sources but not one per task: callers check that
 *   first and tell the user (the pairing of heads with tasks is theirs to give).
 */
export function scoreTasks(
  sources: readonly ScoreSource[],
  labels: Uint8Array,
  tasks: readonly (readonly number[])[],
): Accuracy {
  let jointCorrect = 0;
  let total = 0;
  const taskCorrect = tasks.map(() => 0);
  const taskTotal = tasks.map(() => 0);
  predictImages(sources, labels, tasks, (label, t, jointClass, taskClass) => {
    total += 1;
    if (jointClass === label) jointCorrect += 1;
    taskTotal[t]! += 1;
    if (taskClass === label) taskCorrect[t]! += 1;
  });
  const taskAccuracy = taskCorrect.map((c, t) => (taskTotal[t]! > 0 ? c / taskTotal[t]! : 0));
  return {
    joint: total > 0 ? jointCorrect / total : 0,
    tasks: taskAccuracy,
    avg: taskAccuracy.reduce((a, b) => a + b, 0) / Math.max(1, taskAccuracy.length),
    n: total,
  };
}

/**
 * The predictions behind {@link scoreTasks}: for each image whose label is in task t, `visit`
 * gets its label, t, the joint prediction and task t's prediction, by the rules stated there.
 */
export function predictImages(
  sources: readonly ScoreSource[],
  labels: Uint8Array,
  tasks: readonly (readonly number[])[],
  visit: (label: number, task: number, jointClass: number, taskClass: number) => void,
): void {
  if (sources.length !== 1 && sources.length !== tasks.length) {
    throw new Error(
      `scoreTasks: ${sources.length} sources for ${tasks.length} tasks; expected 1 or one per task`,
    );
  }
  const allClasses = tasks.flat();
  const numClasses = Math.max(...allClasses, ...sources.flatMap((s) => s.labels)) + 1;
  const taskOf = new Int32Array(numClasses).fill(-1);
  tasks.forEach((task, t) => task.forEach((c) => (taskOf[c] = t)));
  // Per head, the classes of the other tasks: masked to -inf before any use.
  const masked = sources.map((_, h) =>
    sources.length === 1 ? [] : allClasses.filter((c) => taskOf[c] !== h),
  );
  const heads = sources.map(() => new Float64Array(numClasses));
  const probabilities = new Float64Array(numClasses);
  const joint = new Float64Array(numClasses);
  const taskLogits = tasks.map((task) => new Float64Array(task.length));
  const taskProbabilities = tasks.map((task) => new Float64Array(task.length));

  for (let image = 0; image < labels.length; image++) {
    const label = labels[image]!;
    const t = label < numClasses ? taskOf[label]! : -1;
    if (t < 0) continue;
    sources.forEach((source, h) => {
      fill(source, image, heads[h]!);
      for (const c of masked[h]!) heads[h]![c] = -Infinity;
    });
    if (sources.length === 1) {
      const z = heads[0]!;
      joint.set(z);
      tasks.forEach((task, u) => {
        const values = taskLogits[u]!;
        const out = taskProbabilities[u]!;
        task.forEach((c, i) => (values[i] = z[c]!));
        softmax32(values, out);
        task.forEach((c, i) => (joint[c] = f32(out[i]! + 2)));
      });
    } else {
      joint.fill(-Infinity);
      for (const head of heads) {
        softmax32(head, probabilities);
        for (let c = 0; c < numClasses; c++)
          if (probabilities[c]! > joint[c]!) joint[c] = probabilities[c]!;
      }
      for (const c of allClasses) joint[c] = f32(joint[c]! + 2);
    }
    const own = heads[sources.length === 1 ? 0 : t]!;
    visit(label, t, argmax(joint), argmaxAmong(own, tasks[t]!));
  }
}
