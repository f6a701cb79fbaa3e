/** @file `zipit inspect`: the feature spaces of a model, in graph order. */
import { ok } from '../errors.js';
import { analyzeGraph } from '../graph/analyze.js';
import { analyzeSpaces } from '../graph/spaces.js';
import { readModelFile } from '../onnx/files.js';
import type { RegisterCommand } from './commands.js';

/** Registers `zipit inspect`. */
export const registerInspect: RegisterCommand = (program, io, run) => {
  program
    .command('inspect')
    .description('list the feature spaces zipit derives from a model')
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
        }));
        if (flags.json) {
          io.out(
            JSON.stringify({
              model: path,
              nodes: graph.value.model.graph.nodes.length,
              spaces: list,
              concats: spaces.value.concats,
            }),
          );
          return ok(undefined);
        }
        io.out(
          `${path}: ${graph.value.model.graph.nodes.length} nodes, ${list.length} feature spaces`,
        );
        for (const s of list) {
          const kind = s.kind === 'fixed' ? `fixed (${s.fixedBy})` : s.kind;
          io.out(
            `  space ${String(s.id).padStart(2)}  width ${String(s.width).padStart(4)}  ${kind}`,
          );
          io.out(`      producers: ${s.producers.join(', ') || '-'}`);
          io.out(`      consumers: ${s.consumers.join(', ') || '-'}`);
          if (s.site) io.out(`      measured at: ${s.site}`);
        }
        for (const c of spaces.value.concats)
          io.out(`  concat ${c.node}: spaces ${c.parts.join(' + ')}`);
        return ok(undefined);
      }),
    );
};
