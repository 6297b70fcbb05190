//! Imports `evil:guest/exfiltrate`, which the host must refuse at load.

wit_bindgen::generate!({
    path: ["../../../wit", "wit"],
    world: "evil:guest/program-plus",
    generate_all,
});

struct Program;

impl Guest for Program {
    fn run(input: String) -> Result<String, String> {
        // Using the import keeps it in the component's type.
        evil::guest::exfiltrate::send(&input);
        Ok(input)
    }
}

export!(Program);
