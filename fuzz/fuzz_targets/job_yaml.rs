//! Job files: any text given to `JobDefinition::from_str` is a definition or errors naming
//! the file (never a panic), and a definition validates against the built-in component
//! types (their properties are deserialized, `${…}` references interpolated) without
//! panicking.
#![no_main]

use ikkatsu_config::JobDefinition;
use ikkatsu_core::JobParameters;
use libfuzzer_sys::fuzz_target;

const ORIGIN: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ikkatsu_fuzz::may_name_special_file(text) {
        return;
    }
    match JobDefinition::from_str(text, ORIGIN) {
        Ok(definition) => {
            assert_eq!(definition.origin(), ORIGIN);
            if let Err(errors) = definition.default_parameters() {
                check_errors(&errors);
            }
            let registry = ikkatsu_fuzz::registry();
            if let Err(errors) = definition.validate(&registry, &JobParameters::new()) {
                check_errors(&errors);
            }
        }
        Err(errors) => check_errors(&errors),
    }
});

/// Errors are never an empty list, and each names the file.
fn check_errors(errors: &ikkatsu_config::ConfigErrors) {
    assert!(!errors.is_empty(), "an error without a message");
    for error in errors.iter() {
        assert_eq!(error.origin(), ORIGIN, "{error}");
        assert!(!error.message().is_empty(), "{error:?}");
    }
}
