//! YAML jobs that convert CSV between encodings through the built-in `csv` reader and
//! writer: Shift_JIS (with a preamble line, 0x5C second bytes and half-width katakana) to
//! UTF-8, and back.

use std::sync::Arc;

use encoding_rs::SHIFT_JIS;
use ikkatsu::config::{AppConfig, JobDefinition};
use ikkatsu::core::ParameterValue;
use ikkatsu::core::prelude::*;

const JOB: &str = r#"
id: convert
steps:
  - name: convert
    chunk:
      reader:
        type: csv
        properties:
          path: "${params.dir}/${params.input}"
          encoding: ${params.from}
          lines-to-skip: ${params.skip}
      writer:
        type: csv
        properties:
          path: "${params.dir}/${params.output}"
          encoding: ${params.to}
      chunk-size: 2
"#;

async fn convert(
    dir: &std::path::Path,
    input: &str,
    output: &str,
    from: &str,
    to: &str,
    skip: &str,
) {
    let definition = JobDefinition::from_str(JOB, "convert.yaml").unwrap();
    let registry = ikkatsu::registry(AppConfig::default());
    let string = |s: &str| ParameterValue::String(s.to_string());
    let params = JobParameters::new()
        .with("dir", string(&dir.display().to_string()))
        .with("input", string(input))
        .with("output", string(output))
        .with("from", string(from))
        .with("to", string(to))
        .with("skip", string(skip));
    let job = definition.build(&registry, &params).unwrap();
    let operator = JobOperator::new(Arc::new(MemoryJobRepository::new()));
    let execution = operator
        .start(&job, params, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(execution.status, BatchStatus::Completed, "{execution:?}");
}

#[tokio::test]
async fn a_yaml_job_converts_shift_jis_to_utf_8_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let body = "コード,名前,メモ\n1,表計算,ｱｲｳ\n2,\"ソ,能\",\"表\"\"\"\n3,ﾃｽﾄ,能\n";
    let text = format!("社内資料 \"2024\"\n{body}");
    let (sjis, _, unmappable) = SHIFT_JIS.encode(&text);
    assert!(!unmappable);
    std::fs::write(dir.path().join("in.csv"), &sjis).unwrap();

    convert(dir.path(), "in.csv", "utf8.csv", "Shift_JIS", "UTF-8", "1").await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("utf8.csv")).unwrap(),
        body
    );

    convert(
        dir.path(),
        "utf8.csv",
        "back.csv",
        "utf-8",
        "shift_jis",
        "0",
    )
    .await;
    let (expected, _, _) = SHIFT_JIS.encode(body);
    assert_eq!(
        std::fs::read(dir.path().join("back.csv")).unwrap(),
        expected.into_owned()
    );
}
