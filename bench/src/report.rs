//! JSON-lines output shared by all benches (hand-written: the values are numbers and
//! fixed identifiers, so no escaping is needed).

/// Prints `{"bench":..,"contender":..,"seconds":..,"rows":..}` on stdout.
pub fn contender(bench: &str, contender: &str, seconds: f64, rows: u64) {
    println!(
        r#"{{"bench":"{bench}","contender":"{contender}","seconds":{seconds:.6},"rows":{rows}}}"#
    );
}

/// Prints `{"bench":..,"ratio_vs_limit":..,"ratio_vs_peer":..}` on stdout; a ratio that
/// could not be computed (a contender did not run) is `null`.
pub fn ratios(bench: &str, vs_limit: Option<f64>, vs_peer: Option<f64>) {
    let fmt = |r: Option<f64>| r.map_or_else(|| "null".to_string(), |r| format!("{r:.4}"));
    println!(
        r#"{{"bench":"{bench}","ratio_vs_limit":{},"ratio_vs_peer":{}}}"#,
        fmt(vs_limit),
        fmt(vs_peer)
    );
}

/// The order two contenders run in during round `round` (1-based): as given in odd rounds,
/// swapped in even ones, so neither always pays for what the other left behind (freed
/// inodes, a warm or fragmented server).
pub fn round_order(round: u32, contenders: [&str; 2]) -> [&str; 2] {
    if round % 2 == 1 {
        contenders
    } else {
        [contenders[1], contenders[0]]
    }
}

/// The geometric mean of `ratios` and their list as JSON (`[1.0123,0.9876]`).
pub fn mean_ratio(ratios: &[f64]) -> (f64, String) {
    let mean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len().max(1) as f64).exp();
    let shown: Vec<String> = ratios.iter().map(|r| format!("{r:.4}")).collect();
    (mean, format!("[{}]", shown.join(",")))
}
