// Few-shot question answering: worked examples, then the question; the
// answer is one line. Mirrors examples/few-shot (Rust) call for call, so the
// output is the same byte for byte for the same model.
import { State, Gen, trim } from 'arbor';

const EXAMPLES = [
  ['What is the capital of France?', 'Paris'],
  ['How many legs does a spider have?', 'Eight'],
  ['Which planet is closest to the Sun?', 'Mercury'],
];

export function run(question) {
  const s = new State();
  s.append('Answer each question in a few words.\n\n');
  for (const [q, a] of EXAMPLES) {
    s.append(`Question: ${q}\nAnswer: ${a}\n\n`);
  }
  // `trim` is Rust's str::trim (Unicode White_Space), not String.prototype.trim.
  s.append(`Question: ${trim(question)}\nAnswer:`);
  s.generate('answer', new Gen().maxTokens(32).stop('\n'));
  return trim(s.variable('answer'));
}
