//! Workload shapes that stress the host's scheduling, not the model. Inputs:
//!
//! - `select N WORDS`: a short prompt, then `select` among N choices of
//!   WORDS words each, about 2.9 tokens a word on the tiny model (one long `select` that must never fail or stall
//!   other tenants' work); returns the chosen index.
//! - `fork-tree WAYS DEPTH TOKENS`: forks WAYS ways level by level to DEPTH
//!   (WAYS^DEPTH leaves), keeping every level alive, then generates TOKENS
//!   tokens on each leaf; returns the number of leaves and live states.

use arbor_guest::{Gen, State, join};

fn num(s: &str, what: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("{what} must be a number, got {s:?}"))
}

fn select(n: u32, words: u32) -> Result<String, String> {
    let s = State::new()?;
    s.append("Pick the best continuation of the story.\nStory: the fox")?;
    let choices: Vec<String> = (0..n)
        .map(|i| {
            (0..words)
                .map(|w| format!("w{}", (i * 31 + w * 7) % 97))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    s.select("pick", &choices)?;
    Ok(s.choice("pick")?.to_string())
}

fn fork_tree(ways: u32, depth: u32, tokens: u32) -> Result<String, String> {
    let root = State::new()?;
    root.append("Think step by step.")?;
    // Every level stays alive (held in `levels`), as a search that may
    // backtrack would keep it.
    let mut levels: Vec<Vec<State>> = vec![vec![root]];
    for d in 0..depth {
        let mut next = Vec::new();
        for (i, s) in levels.last().unwrap().iter().enumerate() {
            for (j, child) in s.fork(ways)?.into_iter().enumerate() {
                child.append(format!(" [{d}.{i}.{j}]"))?;
                next.push(child);
            }
        }
        levels.push(next);
    }
    let leaves = levels.last().unwrap();
    for leaf in leaves {
        leaf.generate("thought", Gen::new().max_tokens(tokens))?;
    }
    join(leaves.iter())?;
    let live: usize = levels.iter().map(Vec::len).sum();
    Ok(serde_json::json!({ "leaves": leaves.len(), "live_states": live }).to_string())
}

fn run(input: String) -> Result<String, String> {
    let words: Vec<&str> = input.split_whitespace().collect();
    match words.as_slice() {
        ["select", n, w] => select(num(n, "N")?, num(w, "WORDS")?),
        ["fork-tree", ways, depth, tokens] => fork_tree(
            num(ways, "WAYS")?,
            num(depth, "DEPTH")?,
            num(tokens, "TOKENS")?,
        ),
        _ => Err(format!("unknown input {input:?}")),
    }
}

arbor_guest::export!(run);
