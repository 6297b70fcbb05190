//! The command line's names for the engine's [`Preset`] and [`WeightDtype`].
//!
//! The engine stays free of clap, and the orphan rule keeps this crate from
//! implementing `clap::ValueEnum` for the engine's types, so each has a mirror
//! here that carries its command-line names and help. The conversions match
//! exhaustively both ways, so a variant added on either side fails to compile
//! until the other follows.

use arbor_engine::{Preset, WeightDtype};

/// A random-weight preset, as `--random` and `--preset` name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// A few MB: tests and the demo.
    Tiny,
    /// About 25M parameters: CPU benchmarks.
    Small,
    /// The shape of Llama-3.2-1B (float16 by default): GPU benchmarks.
    #[value(name = "llama-3.2-1b")]
    Llama32_1b,
    /// The shape of Llama-2-7B (float16 by default): GPU benchmarks.
    #[value(name = "llama-2-7b")]
    Llama2_7b,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Preset {
        match p {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Small => Preset::Small,
            PresetArg::Llama32_1b => Preset::Llama32_1b,
            PresetArg::Llama2_7b => Preset::Llama2_7b,
        }
    }
}

impl From<Preset> for PresetArg {
    fn from(p: Preset) -> PresetArg {
        match p {
            Preset::Tiny => PresetArg::Tiny,
            Preset::Small => PresetArg::Small,
            Preset::Llama32_1b => PresetArg::Llama32_1b,
            Preset::Llama2_7b => PresetArg::Llama2_7b,
        }
    }
}

/// A weight and KV dtype, as `--dtype` names it.
// The variants have no doc comments on purpose: clap would list them as help
// for each possible value, and `--help` shows the dtypes on one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DtypeArg {
    F32,
    F16,
    Bf16,
}

impl From<DtypeArg> for WeightDtype {
    fn from(d: DtypeArg) -> WeightDtype {
        match d {
            DtypeArg::F32 => WeightDtype::F32,
            DtypeArg::F16 => WeightDtype::F16,
            DtypeArg::Bf16 => WeightDtype::Bf16,
        }
    }
}

impl From<WeightDtype> for DtypeArg {
    fn from(d: WeightDtype) -> DtypeArg {
        match d {
            WeightDtype::F32 => DtypeArg::F32,
            WeightDtype::F16 => DtypeArg::F16,
            WeightDtype::Bf16 => DtypeArg::Bf16,
        }
    }
}
