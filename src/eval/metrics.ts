/** @file Joint and per-task accuracy from logits, as the reference's evaluate_logits_alltasks defines them. */

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

/**
 * Scores images against tasks (disjoint class sets).
 * - Task t's accuracy: on images of task t's classes, argmax among task t's classes of the
 *   logits averaged over every source that covers the class (one source: its logits; an
 *   ensemble or multi-head model: the mean).
 * - Joint: a softmax within each task's classes, then the class with the highest probability
 *   over all tasks. When there is one source per task (ensemble, multi-head), task t's softmax
 *   uses source t, the model trained on it; otherwise the averaged logits.
 */
export function scoreTasks(
  sources: readonly ScoreSource[],
  labels: Uint8Array,
  tasks: readonly (readonly number[])[],
): Accuracy {
  const count = labels.length;
  const classes = tasks.flat();
  const maxClass = Math.max(...classes, ...sources.flatMap((s) => s.labels));
  // Averaged logit per class over covering sources.
  const covering: { source: ScoreSource; index: number }[][] = Array.from(
    { length: maxClass + 1 },
    () => [],
  );
  for (const source of sources)
    source.labels.forEach((label, index) => covering[label]!.push({ source, index }));
  const perTaskSource =
    sources.length === tasks.length &&
    tasks.every((task, t) => task.every((c) => sources[t]!.labels.includes(c)));
  const averaged = (image: number, c: number): number => {
    const list = covering[c]!;
    if (list.length === 0) return -Infinity;
    let sum = 0;
    for (const { source, index } of list)
      sum += source.logits[image * source.labels.length + index]!;
    return sum / list.length;
  };
  const jointLogit = (image: number, t: number, c: number): number => {
    if (!perTaskSource) return averaged(image, c);
    const source = sources[t]!;
    return source.logits[image * source.labels.length + source.labels.indexOf(c)]!;
  };
  const taskOf = new Map<number, number>();
  tasks.forEach((task, t) => task.forEach((c) => taskOf.set(c, t)));
  let jointCorrect = 0;
  let jointTotal = 0;
  const taskCorrect = tasks.map(() => 0);
  const taskTotal = tasks.map(() => 0);
  for (let image = 0; image < count; image++) {
    const label = labels[image]!;
    const t = taskOf.get(label);
    if (t === undefined) continue;
    // Joint: per-task softmax, best probability overall.
    let bestProbability = -1;
    let bestClass = -1;
    for (const [u, task] of tasks.entries()) {
      const logits = task.map((c) => jointLogit(image, u, c));
      const max = Math.max(...logits);
      const exps = logits.map((l) => Math.exp(l - max));
      const total = exps.reduce((a, b) => a + b, 0);
      exps.forEach((e, i) => {
        if (e / total > bestProbability) {
          bestProbability = e / total;
          bestClass = task[i]!;
        }
      });
    }
    jointTotal += 1;
    if (bestClass === label) jointCorrect += 1;
    // Task accuracy: argmax within the image's own task.
    let best = -Infinity;
    let predicted = -1;
    for (const c of tasks[t]!) {
      const logit = averaged(image, c);
      if (logit > best) {
        best = logit;
        predicted = c;
      }
    }
    taskTotal[t]! += 1;
    if (predicted === label) taskCorrect[t]! += 1;
  }
  const taskAccuracy = taskCorrect.map((c, t) => (taskTotal[t]! > 0 ? c / taskTotal[t]! : 0));
  return {
    joint: jointTotal > 0 ? jointCorrect / jointTotal : 0,
    tasks: taskAccuracy,
    avg: taskAccuracy.reduce((a, b) => a + b, 0) / Math.max(1, taskAccuracy.length),
    n: jointTotal,
  };
}
