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

/// A date-time before the year 0 in UTC (`-3-01-31T12:00:00.5`, or `0000-01-01T00:30:00+01:00`)
/// was accepted, but its text (`-0003-…`, what `${params.x}` gives) is no RFC 3339 date-time
/// and did not parse back. Dates and date-times are limited to the years 0000 to 9999.
#[test]
fn a_date_or_date_time_outside_the_years_0000_to_9999_is_refused() {
    for spec in [
        "input=-3-01-31T12:00:00.5,java.time.LocalDateTime",
        "at=0000-01-01T00:30:00+01:00,datetime",
        "at=+10000-01-01T00:00:00,datetime",
        "day=-3-01-31,date",
        "day=+10000-01-01,date",
    ] {
        let err = JobParameters::new().insert_parsed(spec).unwrap_err();
        assert!(
            err.message().contains("is not a valid date"),
            "{spec}: {err}"
        );
    }
    let mut parameters = JobParameters::new();
    for spec in [
        "first=0000-01-01T00:00:00Z,datetime",
        "last=9999-12-31T23:59:59.999999999Z,datetime",
        "day=0000-01-01,date",
        "end=9999-12-31,date",
    ] {
        parameters.insert_parsed(spec).unwrap();
    }
    for (name, parameter) in parameters.iter() {
        let again = format!(
            "{name}={},{}",
            parameter.value.to_text(),
            parameter.value.type_name()
        );
        let mut back = JobParameters::new();
        back.insert_parsed(&again).unwrap();
        assert_eq!(back.get(name), Some(parameter), "{again}");
    }
}

/// A float that overflows to infinity (`1e999`, 400 digits) or is not a number was stored as
/// JSON `null`, and the repository could not read the execution back: it is refused with the
/// parameter's text instead.
#[test]
fn a_float_parameter_must_be_finite() {
    let long = format!("x={},double", "9".repeat(400));
    for spec in [
        "x=1e999,double",
        "x=-1e999,float",
        "x=inf,double",
        "x=NaN,float",
        long.as_str(),
    ] {
        let mut parameters = JobParameters::new();
        let err = parameters.insert_parsed(spec).unwrap_err().to_string();
        assert!(
            err.contains("not a valid float (a finite number"),
            "{spec}: {err}"
        );
        assert!(parameters.get("x").is_none(), "{spec}");
    }
    let mut parameters = JobParameters::new();
    parameters.insert_parsed("x=1.7e308,double").unwrap();
    let json = serde_json::to_string(&parameters).unwrap();
    assert_eq!(
        serde_json::from_str::<JobParameters>(&json).unwrap(),
        parameters
    );
}
