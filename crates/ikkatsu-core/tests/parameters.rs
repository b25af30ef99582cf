//! Job parameters as the job repository keeps them (JSON): inputs found by the
//! `job_parameters` fuzz target (`scripts/fuzz`).

use ikkatsu_core::{JobParameters, ParameterValue};

/// A float with more significant digits than the shortest text of its value read back
/// from JSON one unit in the last place off (serde_json's default float parsing is not
/// exact), so a restarted execution saw another value, and another job key.
#[test]
fn a_float_parameter_reads_back_from_json_unchanged() {
    let mut parameters = JobParameters::new();
    parameters
        .insert_parsed(
            "rate=04444444444444444444444444444444444444444444444444444444444444444444444444444444454.0,double,false",
        )
        .unwrap();
    parameters
        .insert_parsed("id=4444444444444444444444444444444444444444444444444444444444444444444444444444444454.0,double")
        .unwrap();
    assert_eq!(
        parameters.get("rate").map(|p| p.value.clone()),
        Some(ParameterValue::Float(4.444444444444444e81))
    );
    let json = serde_json::to_string(&parameters).unwrap();
    let stored: JobParameters = serde_json::from_str(&json).unwrap();
    assert_eq!(stored, parameters, "{json}");
    assert_eq!(stored.job_key(), parameters.job_key());
}
