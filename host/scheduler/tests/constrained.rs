//! Constrained generation through the whole stack (tokenizer, automaton,
//! masks, jump-forward, scheduler), checked by independent validators: the
//! `regex` crate and the `jsonschema` crate.

mod common;

use arbor_engine::SamplingParams;
use arbor_scheduler::{
    Constraint, Event, GenerateRequest, Namespace, RequestError, SchedulerConfig,
};

const REGEXES: &[&str] = &[
    r"[0-9]{3}-[0-9]{4}",
    r"(yes|no|maybe)",
    r"[a-z]+@[a-z]+\.(com|org)",
    r#"\{"name": "[A-Za-z ]{1,12}", "age": [0-9]{1,2}\}"#,
    r"(ab|cd)*ef",
];

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string", "maxLength": 10},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "email": {"type": "string", "format": "email"},
    "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3},
    "active": {"type": "boolean"},
    "kind": {"enum": ["a", "b", "c"]}
  },
  "required": ["name", "age", "active", "kind"]
}"#;

fn prompt() -> Vec<u32> {
    vec![0, 40, 41, 42, 43]
}

fn run_one(
    s: &arbor_scheduler::Scheduler,
    c: Constraint,
    seed: u64,
    temp: f32,
    max: usize,
) -> Result<arbor_scheduler::Generated, RequestError> {
    let mut r = GenerateRequest::new(Namespace::tenant(1), prompt(), max);
    r.constraint = Some(c);
    r.sampling = SamplingParams {
        temperature: temp,
        seed,
        ..Default::default()
    };
    s.generate(r)?.blocking_collect()
}

#[test]
fn every_finished_output_matches_its_regex() {
    let s = common::scheduler(4096, SchedulerConfig::default());
    for re in REGEXES {
        let check = regex::Regex::new(&format!("^(?:{re})$")).unwrap();
        for seed in 0..12 {
            let temp = if seed == 0 { 0.0 } else { 1.0 };
            let g = run_one(&s, Constraint::Regex(re.to_string()), seed, temp, 64).unwrap();
            if g.finish.is_stop() {
                assert!(check.is_match(&g.text), "{re:?} seed {seed}: {:?}", g.text);
            } else {
                // Cut by max_tokens: still a prefix the automaton allowed.
                assert!(g.tokens.len() == 64, "{re:?}: {:?}", g);
            }
        }
    }
}

#[test]
fn every_json_output_parses_and_validates() {
    let s = common::scheduler(4096, SchedulerConfig::default());
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut finished = 0;
    for seed in 0..16 {
        let g = run_one(&s, Constraint::JsonSchema(SCHEMA.into()), seed, 1.0, 160).unwrap();
        if !g.finish.is_stop() {
            continue;
        }
        finished += 1;
        let v: serde_json::Value =
            serde_json::from_str(&g.text).unwrap_or_else(|e| panic!("{e}: {:?}", g.text));
        assert!(validator.is_valid(&v), "seed {seed}: {v}");
    }
    assert!(finished >= 12, "only {finished} of 16 outputs finished");
    assert!(
        s.stats().jump_forward_tokens > 0,
        "the schema forces key names: jump-forward must fire"
    );
}

#[test]
fn jump_forward_cuts_decoding_steps() {
    let mut steps = Vec::new();
    for jf in [true, false] {
        let s = common::scheduler(
            4096,
            SchedulerConfig {
                jump_forward: jf,
                ..Default::default()
            },
        );
        for seed in 0..4 {
            let g = run_one(&s, Constraint::JsonSchema(SCHEMA.into()), seed, 0.0, 160).unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(&g.text).is_ok(),
                "{:?}",
                g.text
            );
        }
        steps.push((s.stats().steps, s.stats().constrained_sampled_tokens));
    }
    let (on, off) = (steps[0], steps[1]);
    assert!(
        on.0 < off.0 && on.1 < off.1,
        "jump-forward on {on:?} vs off {off:?}"
    );
}

#[test]
fn hostile_constraints_fail_clearly_while_others_run() {
    let s = common::scheduler(4096, SchedulerConfig::default());
    let mut ok = GenerateRequest::new(Namespace::tenant(2), prompt(), 40);
    ok.ignore_eos = true;
    let neighbour = s.generate(ok).unwrap();
    let hostile = [
        Constraint::Regex("(a|b)*a(a|b){40}".into()),
        Constraint::Regex("x".repeat(1 << 20)),
        Constraint::Regex("".into()),
        Constraint::Regex("(".into()),
        Constraint::JsonSchema(r##"{"$ref": "#"}"##.into()),
        Constraint::JsonSchema(r#"{"type": "string", "patternProperties": {}}"#.into()),
        Constraint::JsonSchema("not json".into()),
        Constraint::Choices(vec![]),
    ];
    for c in hostile {
        let t = std::time::Instant::now();
        let r = run_one(&s, c.clone(), 0, 0.0, 8);
        match r {
            Err(RequestError::Constraint(e)) => assert!(!e.to_string().is_empty()),
            other => panic!("{c:?}: expected a clear error, got {other:?}"),
        }
        assert!(t.elapsed().as_secs() < 10, "{c:?} took {:?}", t.elapsed());
    }
    assert_eq!(neighbour.blocking_collect().unwrap().tokens.len(), 40);
}

#[test]
fn choices_constraint_yields_one_of_them_and_streams_tokens() {
    let s = common::scheduler(4096, SchedulerConfig::default());
    let choices = vec!["red".to_string(), "green".to_string(), "blue".to_string()];
    let mut r = GenerateRequest::new(Namespace::tenant(1), prompt(), 16);
    r.constraint = Some(Constraint::Choices(choices.clone()));
    let mut st = s.generate(r).unwrap();
    let mut streamed = String::new();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let done = rt.block_on(async {
        loop {
            match st.next().await.unwrap() {
                Event::Token { text, .. } => streamed.push_str(&text),
                Event::Done { text, .. } => return text,
                Event::Error(e) => panic!("{e}"),
            }
        }
    });
    assert!(choices.contains(&done), "{done:?}");
    assert_eq!(streamed, done);
}

#[test]
fn constrained_requests_with_logprobs_report_every_token() {
    let s = common::scheduler(2048, SchedulerConfig::default());
    let mut r = GenerateRequest::new(Namespace::tenant(1), prompt(), 160);
    r.constraint = Some(Constraint::JsonSchema(SCHEMA.into()));
    r.logprobs = Some(0);
    let mut stream = s.generate(r).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut tokens, mut with_logprob) = (0, 0);
    let done = rt.block_on(async {
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Token { logprob, .. } => {
                    tokens += 1;
                    with_logprob += logprob.is_some() as usize;
                }
                Event::Done { text, .. } => return text,
                Event::Error(e) => panic!("{e}"),
            }
        }
        panic!("no end")
    });
    assert!(
        tokens > 0 && with_logprob == tokens,
        "{with_logprob} of {tokens}"
    );
    serde_json::from_str::<serde_json::Value>(&done).expect("still valid JSON");
}
