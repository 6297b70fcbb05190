//! A hostile guest. The input names the misbehaviour:
//!
//! - `spin`: computes forever.
//! - `spin-after-read`: reads a state, then computes forever.
//! - `memory`: allocates until the memory limit stops it.
//! - `states`: creates states until refused; returns how many and why.
//! - `fork N`: forks one state into N.
//! - `long-text N`: appends N bytes of text and reads the token count.
//! - `queue N`: queues N appends on one state without reading, then reads.
//! - `output N`: returns N bytes.
//! - `log N`: prints N bytes to stdout and N to stderr.
//! - `dropped`: drops a state, then uses its handle.
//! - `tokens N`: queues N generations of 64 tokens, then reads.
//! - `panic`: panics.

use std::hint::black_box;

use arbor_guest::{Gen, State, bindings::lm};

fn arg(input: &str) -> usize {
    input
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Recursion the optimiser cannot turn into a loop: each frame keeps a
/// buffer alive across the call.
#[allow(unconditional_recursion)]
fn depth(n: u64) -> u64 {
    let buf = black_box([n; 64]);
    depth(buf[(n % 64) as usize] + 1) + buf[0]
}

fn run(input: String) -> Result<String, String> {
    let mode = input.split_whitespace().next().unwrap_or("");
    match mode {
        "spin" => spin(),
        "spin-after-read" => {
            let s = State::new()?;
            s.append("hello")?;
            s.text()?;
            spin()
        }
        "memory" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                black_box(&hoard);
            }
        }
        "states" => {
            let mut held = Vec::new();
            loop {
                match State::new() {
                    Ok(s) => held.push(s),
                    Err(e) => return Ok(format!("{} {e}", held.len())),
                }
            }
        }
        "fork" => {
            let s = State::new()?;
            s.append("root")?;
            let kids = s.fork(arg(&input) as u32)?;
            Ok(kids.len().to_string())
        }
        "long-text" => {
            let s = State::new()?;
            s.append("x ".repeat(arg(&input) / 2))?;
            Ok(s.token_count()?.to_string())
        }
        "queue" => {
            let s = State::new()?;
            for _ in 0..arg(&input) {
                s.append("a")?;
            }
            Ok(s.text()?.len().to_string())
        }
        "output" => Ok("o".repeat(arg(&input))),
        "log" => {
            let n = arg(&input);
            println!("{}", "l".repeat(n));
            eprintln!("{}", "e".repeat(n));
            Ok("logged".into())
        }
        "dropped" => {
            let s = lm::State::create().map_err(|e| format!("{e:?}"))?;
            let handle = s.take_handle();
            // SAFETY: deliberately wrong: the handle is re-wrapped after the
            // host was told to drop it, to check the host refuses it.
            let again = unsafe {
                drop(lm::State::from_handle(handle));
                lm::State::from_handle(handle)
            };
            again.append("after drop").map_err(|e| format!("{e:?}"))?;
            Ok("the host accepted a dropped state".into())
        }
        "tokens" => {
            let s = State::new()?;
            s.append("Once upon a time")?;
            for i in 0..arg(&input) {
                s.generate(
                    &format!("g{i}"),
                    Gen::new().max_tokens(64).temperature(1.0).seed(i as u64),
                )?;
            }
            Ok(s.text()?)
        }
        "panic" => panic!("deliberate panic"),
        // Unbounded recursion: overflows the guest's stack in its own
        // linear memory, which wasm reports as an out-of-bounds access.
        "recurse" => Ok(depth(black_box(0)).to_string()),
        _ => Err(format!("unknown mode {mode:?}")),
    }
}

arbor_guest::export!(run);
