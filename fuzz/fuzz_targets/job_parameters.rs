//! Job parameters in Spring Batch's notation (`name=value[,type[,identifying]]`), one per
//! line of the input: `JobParameters::insert_parsed` adds a parameter or errors, never
//! panics. What it added survives what the job repository does with it: stored as JSON and
//! read back it is the same parameter (a secret comes back withheld) with the same job
//! instance key; written back in the notation (the value in double quotes) it parses to
//! the same value. `launch_parameters` (reading `${ENV}` references) never panics.
#![no_main]

use ikkatsu_core::{JobParameter, JobParameters, ParameterValue, Sensitivity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parameters = JobParameters::new();
    for spec in text.split('\n') {
        if let Ok(()) = parameters.insert_parsed(spec) {
            let name = spec
                .split_once('=')
                .map(|(n, _)| n.trim())
                .unwrap_or_default();
            let parameter = parameters.get(name);
            assert!(parameter.is_some(), "{spec:?} added no parameter `{name}`");
            if let Some(parameter) = parameter {
                check_notation(name, parameter);
            }
        }
    }

    let json = serde_json::to_string(&parameters).expect("parameters serialize");
    let stored: JobParameters = match serde_json::from_str(&json) {
        Ok(stored) => stored,
        Err(err) => panic!("the stored parameters {json} cannot be read back: {err}"),
    };
    assert_eq!(stored.job_key(), parameters.job_key(), "{json}");
    for (name, parameter) in parameters.iter() {
        let back = stored.get(name);
        assert!(back.is_some(), "`{name}` is lost in {json}");
        let Some(back) = back else { continue };
        assert_eq!(back.identifying, parameter.identifying, "{name}");
        if parameter.is_secret() {
            assert_eq!(back.sensitivity, Sensitivity::Withheld, "{name}");
        } else {
            assert!(same_value(&back.value, &parameter.value), "{name}: {json}");
        }
    }

    if !ikkatsu_fuzz::may_name_special_file(text) {
        let _ = ikkatsu_config::launch_parameters(&parameters);
    }
});

/// The parameter written back as `name="value",type,identifying` parses to the same value.
fn check_notation(name: &str, parameter: &JobParameter) {
    let value = parameter.value.to_text().replace('"', "\"\"");
    let spec = format!(
        "{name}=\"{value}\",{},{}",
        parameter.value.type_name(),
        parameter.identifying
    );
    let mut again = JobParameters::new();
    if let Err(err) = again.insert_parsed(&spec) {
        panic!("{spec:?}, written from {parameter:?}, does not parse: {err}");
    }
    let back = again.get(name);
    assert!(
        back.is_some_and(|back| same_value(&back.value, &parameter.value)
            && back.identifying == parameter.identifying),
        "{spec:?} parses to {back:?}, not {parameter:?}"
    );
}

/// Equal values, NaN being equal to itself.
fn same_value(a: &ParameterValue, b: &ParameterValue) -> bool {
    match (a, b) {
        (ParameterValue::Float(x), ParameterValue::Float(y)) => {
            x == y || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}
