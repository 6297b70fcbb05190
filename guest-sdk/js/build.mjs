// Builds one Arbor program written in JavaScript into a WebAssembly
// component of the WIT world `arbor:lm/program`. Run it through build.sh:
//
//     guest-sdk/js/build.sh PROGRAM.js OUT.wasm
//
// 1. esbuild bundles the program, the SDK (imported as 'arbor') and anything
//    else the program imports into one ES module, because the engine that
//    componentize-js embeds loads a single source tree and knows nothing of
//    npm package resolution. The WIT import 'arbor:lm/lm@0.1.0' stays
//    external: componentize-js provides it.
// 2. componentize-js embeds that module in its SpiderMonkey engine and
//    pre-initialises it. The 'http' and 'fetch-event' features are off:
//    they would make the component import wasi:http, which Arbor does not
//    provide. stdio (console.*), random and clocks (performance.now) stay.
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdtemp, rm, writeFile, rename, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const witDir = resolve(here, '../../wit');

async function main(argv) {
  if (argv.length !== 2 || argv[0].startsWith('-')) {
    console.error('usage: guest-sdk/js/build.sh PROGRAM.js OUT.wasm');
    return 2;
  }
  const program = resolve(argv[0]);
  const out = resolve(argv[1]);
  await stat(program); // a clear ENOENT before anything else runs
  const work = await mkdtemp(join(tmpdir(), 'arbor-js-'));
  try {
    // The entry re-exports the program's `run` through the SDK's `program`,
    // so that a thrown error becomes the `err` string instead of a trap.
    const entry = join(work, 'entry.js');
    await writeFile(
      entry,
      `import * as user from ${JSON.stringify(program)};\n` +
        `import { program } from 'arbor';\n` +
        `if (typeof user.run !== 'function') {\n` +
        `  throw new Error(${JSON.stringify(`${basename(program)} must export a function run(input)`)});\n` +
        `}\n` +
        `export const run = program(user.run);\n`,
    );
    const bundle = join(work, 'program.js');
    await build({
      entryPoints: [entry],
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      mainFields: ['module', 'main'],
      alias: { arbor: join(here, 'arbor.js') },
      external: ['arbor:lm/lm@0.1.0'],
      outfile: bundle,
      logLevel: 'warning',
      // The engine is a recent SpiderMonkey: no syntax needs lowering.
      target: 'esnext',
    });
    const { component } = await componentize({
      sourcePath: bundle,
      witPath: witDir,
      worldName: 'program',
      disableFeatures: ['http', 'fetch-event'],
    });
    // Write then rename, so that a reader never sees half a component.
    const tmp = `${out}.${process.pid}.tmp`;
    await writeFile(tmp, component);
    await rename(tmp, out);
    return 0;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    console.error(`build failed: ${e && e.message ? e.message : e}`);
    process.exit(1);
  },
);
