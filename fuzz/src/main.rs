//! The coverage-guided fuzzer (AFL++ through the `afl` crate, on the stable toolchain): one
//! binary, the target named by its argument; the bodies are the library's `fuzz_targets`.
//! Run through `make fuzz` (see the README's Fuzzing section).

use kuberhealthy::fuzz_targets::TARGETS;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(&(_, target)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: kh-fuzz <target>; targets: {}", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| target(data));
}
