// Tree of thought: at each of three levels, three branches propose the next
// step in parallel; the model picks the most promising one, which the next
// level extends. Returns the chosen path and the final answer as JSON.
// Mirrors examples/tree-of-thought (Rust) call for call.
import { State, Gen, join, trim } from 'arbor';

const DEPTH = 3;
const WIDTH = 3;

export function run(problem) {
  const root = new State();
  root.append(`Solve the problem step by step.\nProblem: ${trim(problem)}\n`);
  let current = root;
  const steps = [];
  for (let depth = 1; depth <= DEPTH; depth++) {
    const branches = current.fork(WIDTH);
    branches.forEach((b, i) => {
      b.append(`Step ${depth}:`);
      b.generate(
        'step',
        new Gen().maxTokens(48).temperature(0.8).seed(depth * 10 + i).stop('\n'),
      );
      b.append('\n');
    });
    join(branches);
    const candidates = branches.map((b) => trim(b.variable('step')));
    const best = pickBest(problem, steps, candidates);
    if (best >= candidates.length) throw new Error(`select picked ${best} of ${candidates.length}`);
    steps.push(candidates[best]);
    // Drop what the Rust version drops here, in its order (the branches
    // before the best, the previous state, the branches after the best), so
    // the host sees the same calls; their work is done.
    branches.slice(0, best).forEach((b) => b.drop());
    current.drop();
    branches.slice(best + 1).forEach((b) => b.drop());
    current = branches[best];
  }
  current.append('Final answer:');
  current.generate('answer', new Gen().maxTokens(32).stop('\n'));
  const answer = trim(current.variable('answer'));
  // Key order as the Rust struct declares it; JSON.stringify escapes strings
  // exactly as serde_json does.
  return JSON.stringify({ steps, answer });
}

/** Asks the model which candidate step is most promising. */
function pickBest(problem, soFar, candidates) {
  const judge = new State();
  try {
    judge.append(`Problem: ${trim(problem)}\nSteps so far:\n`);
    for (const s of soFar) {
      judge.append(`- ${s}\n`);
    }
    judge.append('Candidate next steps:\n');
    const labels = candidates.map((_, i) => String(i + 1));
    candidates.forEach((c, i) => {
      judge.append(`${labels[i]}. ${c}\n`);
    });
    judge.append('The most promising candidate is number ');
    judge.select('best', labels);
    return judge.choice('best');
  } finally {
    judge.drop();
  }
}
