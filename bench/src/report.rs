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
