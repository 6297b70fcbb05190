//! Constrained decoding: regex and JSON Schema compiled to token automata with jump-forward.
