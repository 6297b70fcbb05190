//! Host bindings generated from `wit/arbor.wit`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "arbor:lm/program",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "arbor:lm/lm.state": crate::state::StateHandle },
});

pub(crate) use arbor::lm::lm;
