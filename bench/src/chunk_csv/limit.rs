//! The "limit": the fastest reasonable hand-written Rust for the job, no framework.
//!
//! One `ByteRecord` reused for every row (no allocation per row), the `city` field
//! uppercased in place when it is ASCII (a `str::to_uppercase` fallback otherwise), written
//! with `csv::Writer`. No chunks, no transactions, no bookkeeping: what a framework adds on
//! top of this is its overhead.

use std::path::Path;

use super::CITY;

pub fn run(input: &Path, output: &Path) -> Result<(), String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(input)
        .map_err(|e| format!("cannot open {}: {e}", input.display()))?;
    let mut writer = csv::Writer::from_path(output)
        .map_err(|e| format!("cannot create {}: {e}", output.display()))?;

    let mut record = csv::ByteRecord::new();
    let mut fields: Vec<u8> = Vec::with_capacity(256);
    let mut ends: Vec<usize> = Vec::with_capacity(8);
    let mut first = true;
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| format!("{}: {e}", input.display()))?
    {
        if first {
            // Header row: copied as is.
            first = false;
            writer
                .write_byte_record(&record)
                .map_err(|e| e.to_string())?;
            continue;
        }
        let city = record
            .get(CITY)
            .ok_or_else(|| format!("{}: row without a city field", input.display()))?;
        if city.is_ascii() && !city.iter().any(u8::is_ascii_lowercase) {
            writer
                .write_byte_record(&record)
                .map_err(|e| e.to_string())?;
            continue;
        }
        // Rebuild the row into one reused buffer with the city uppercased.
        fields.clear();
        ends.clear();
        for (i, field) in record.iter().enumerate() {
            if i == CITY {
                if field.is_ascii() {
                    let start = fields.len();
                    fields.extend_from_slice(field);
                    fields[start..].make_ascii_uppercase();
                } else {
                    let text = std::str::from_utf8(field)
                        .map_err(|e| format!("{}: city is not UTF-8: {e}", input.display()))?;
                    fields.extend_from_slice(text.to_uppercase().as_bytes());
                }
            } else {
                fields.extend_from_slice(field);
            }
            ends.push(fields.len());
        }
        let mut start = 0;
        writer
            .write_record(ends.iter().map(|&end| {
                let field = &fields[start..end];
                start = end;
                field
            }))
            .map_err(|e| e.to_string())?;
    }
    writer
        .flush()
        .map_err(|e| format!("cannot write {}: {e}", output.display()))
}
