//! Cross-crate tests: the engine checked against an independent reference forward pass.
