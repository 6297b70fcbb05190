// Lets Node load the SDK and the examples outside a component: the WIT
// import 'arbor:lm/lm@0.1.0' resolves to fake-lm.mjs (a recording fake
// host) and 'arbor' to the SDK, as build.mjs's esbuild alias does.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
      const fake = ${JSON.stringify(new URL('./fake-lm.mjs', import.meta.url).href)};
      const sdk = ${JSON.stringify(new URL('../arbor.js', import.meta.url).href)};
      export async function resolve(specifier, context, next) {
        if (specifier === 'arbor:lm/lm@0.1.0') return { url: fake, shortCircuit: true };
        if (specifier === 'arbor') return { url: sdk, shortCircuit: true };
        return next(specifier, context);
      }
    `),
);
