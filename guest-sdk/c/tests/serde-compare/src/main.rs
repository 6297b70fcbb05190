//! Prints, for each NUL-separated UTF-8 case on stdin, what serde_json and
//! std make of it (decode as the json-extract Person, trim, split_whitespace,
//! {:?}, JSON string); harness.c prints the same lines with the C SDK.
use serde::{Deserialize, Serialize};
use std::io::Read;
#[derive(Serialize, Deserialize)]
struct Person { name: String, age: u32, city: String }
fn main() {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf).unwrap();
    for case in buf.split(|b| *b == 0) {
        let s = std::str::from_utf8(case).unwrap();
        match serde_json::from_str::<Person>(s) {
            Ok(p) => println!("OK {}", serde_json::to_string(&p).unwrap()),
            Err(e) => println!("ERR invalid JSON: {e}"),
        }
        let t = s.trim();
        let w: Vec<&str> = s.split_whitespace().collect();
        println!("TRIM {:?} WORDS {:?}", t, w);
        println!("DEBUG {:?}", s);
        println!("JSON {}", serde_json::to_string(s).unwrap());
    }
}
