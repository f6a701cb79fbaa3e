/** @file `zipit inspect`: the feature spaces of a model in graph order, and its stop points. */
import { ok } from '../errors.js';
import { analyzeGraph, analyzeSpaces, countMacs, findStopPoints, readModelFile } from '../index.js';
import type { RegisterCommand } from './command.js';
import { printable } from './printable.js';

/** Registers `zipit inspect`. */
export const registerInspect: RegisterCommand = (program, io, run) => {
  program
    .command('inspect')
    .description(
      'list the feature spaces zipit derives from a model, and where --stop-at may cut it',
    )
    .argument('<model>', 'an ONNX model file')
    .option('--json', 'print one JSON object on stdout')
    .action((path: string, flags: { json?: boolean }) =>
      run(async () => {
        const model = readModelFile(path);
        if (!model.ok) return model;
        const graph = analyzeGraph(model.value);
        if (!graph.ok) return graph;
        const spaces = analyzeSpaces(graph.value);
        if (!spaces.ok) return spaces;
        const list = spaces.value.spaces.map((s) => ({
          id: s.id,
          width: s.width,
          kind: s.kind,
          ...(s.fixedBy ? { fixedBy: s.fixedBy } : {}),
          producers: s.producers,
          consumers: s.consumers,
          parameters: s.parameters,
          site: s.site?.value ?? null,
          ...(s.groups !== undefined ? { heads: s.groups } : {}),
        }));
        // FLOPs of a two-model multi-head result: the trunk once, then one head per model.
        const stopPoints = findStopPoints(graph.value, spaces.value).map((p) => ({
          id: p.id,
          space: p.space,
          zipped: p.zipped,
          total: p.total,
          flops: p.trunkMacs + 2 * p.headMacs,
        }));
        const macs = countMacs(graph.value);
        const nodes = graph.value.model.graph.nodes.length;
        if (flags.json) {
          io.out(
            JSON.stringify({
              model: path,
              nodes,
              macs,
              spaces: list,
              concats: spaces.value.concats,
              stopPoints,
            }),
          );
          return ok(undefined);
        }
        // Names come from the file: escaped, so a crafted name cannot forge or colour lines.
        const say = (line: string): void => io.out(printable(line));
        say(
          `${path}: ${nodes} nodes, ${(macs / 1e6).toFixed(1)}M MACs per image, ${list.length} feature spaces`,
        );
        for (const s of list) {
          const kind =
            (s.kind === 'fixed' ? `fixed (${s.fixedBy})` : s.kind) +
            (s.heads !== undefined ? `, ${s.heads} attention heads` : '');
          say(`  space ${String(s.id).padStart(2)}  width ${String(s.width).padStart(4)}  ${kind}`);
          say(`      producers: ${s.producers.join(', ') || '-'}`);
          say(`      consumers: ${s.consumers.join(', ') || '-'}`);
          if (s.site) say(`      measured at: ${s.site}`);
        }
        for (const c of spaces.value.concats)
          say(`  concat ${c.node}: spaces ${c.parts.join(' + ')}`);
        say('stop points for --stop-at (MACs per image of a two-model multi-head merge):');
        for (const p of stopPoints) {
          say(
            `  ${p.id}  space ${p.space}  zipped ${p.zipped}/${p.total}  ${(p.flops / 1e6).toFixed(1)}M MACs`,
          );
        }
        return ok(undefined);
      }),
    );
};
