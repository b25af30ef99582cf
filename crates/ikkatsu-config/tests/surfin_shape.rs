//! The shapes of Surfin Batch's JSL as the parser reads them: what each becomes in the job
//! definition, and each mistake with its position and what to do.

use ikkatsu_config::{ComponentSelector, ElementKind, JobDefinition};

fn parse(yaml: &str) -> JobDefinition {
    JobDefinition::from_str(yaml, "job.yaml").unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match JobDefinition::from_str(yaml, "job.yaml") {
        Ok(_) => panic!("accepted:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

fn chunk_size(definition: &JobDefinition, element: &str) -> Option<u64> {
    match &definition.element(element).unwrap().kind {
        ElementKind::Chunk(chunk) => chunk.chunk_size.as_ref().map(|s| s.value),
        other => panic!("not a chunk: {other:?}"),
    }
}

/// One chunk element in Surfin Batch's shape, with `CHUNK` as its `chunk` lines.
fn chunk_job(chunk: &str) -> String {
    format!(
        "id: j\nflow:\n  start-element: s\n  elements:\n    s:\n      reader: {{ ref: r }}\n      writer: {{ ref: w }}\n{chunk}"
    )
}

#[test]
fn name_beside_id_is_a_display_name_and_alone_it_is_the_jobs_name() {
    let both =
        parse("id: daily\nname: Daily load\nsteps:\n  - name: a\n    tasklet: { type: noop }\n");
    assert_eq!(both.id.value, "daily");
    assert_eq!(both.display_name.as_deref(), Some("Daily load"));
    let alone = parse("name: daily\nsteps:\n  - name: a\n    tasklet: { type: noop }\n");
    assert_eq!(alone.id.value, "daily");
    assert_eq!(alone.display_name, None);
}

#[test]
fn item_count_sizes_the_chunk_and_commit_interval_only_without_it() {
    let both = parse(&chunk_job(
        "      chunk:\n        item-count: 50\n        commit-interval: 1\n",
    ));
    assert_eq!(chunk_size(&both, "s"), Some(50));
    let interval = parse(&chunk_job("      chunk:\n        commit-interval: 7\n"));
    assert_eq!(chunk_size(&interval, "s"), Some(7));
    let none = parse(&chunk_job(""));
    assert_eq!(chunk_size(&none, "s"), None);
    // ikkatsu's own chunk keys may join them.
    let skip = parse(&chunk_job(
        "      chunk:\n        item-count: 5\n        skip: { limit: 3, on: [parse] }\n",
    ));
    let ElementKind::Chunk(chunk) = &skip.element("s").unwrap().kind else {
        panic!("not a chunk");
    };
    assert_eq!(chunk.skip.as_ref().map(|s| s.limit), Some(3));

    let err = error(&chunk_job(
        "      chunk:\n        item-count: 5\n        chunk-size: 5\n",
    ));
    assert!(
        err.contains("job.yaml:10:9: `chunk-size` is an alias of `item-count` in the chunk of element `s`: give only one"),
        "{err}"
    );
    let err = error(&chunk_job(
        "      chunk:\n        item-count: 5\n        isolation-level: SERIALIZABLE\n",
    ));
    assert!(
        err.contains("job.yaml:10:9: unknown key `isolation-level` in the chunk of element `s`"),
        "{err}"
    );
}

#[test]
fn a_decision_given_by_ref_takes_its_properties() {
    let definition = parse(
        "id: j\nflow:\n  start-element: d\n  elements:\n    d:\n      id: d\n      ref: conditionalDecision\n      properties: { conditionKey: k, expectedValue: v }\n      transitions:\n        - { on: COMPLETED, end: true }\n",
    );
    let ElementKind::Decision(decider) = &definition.element("d").unwrap().kind else {
        panic!("not a decision");
    };
    assert_eq!(
        decider.selector,
        ComponentSelector::Ref(decider.selector.name().clone())
    );
    assert_eq!(decider.selector.name().value, "conditionalDecision");
    assert_eq!(
        decider
            .properties
            .get("conditionKey")
            .and_then(|n| n.as_str()),
        Some("k")
    );
}

#[test]
fn the_two_shapes_do_not_mix_in_one_element() {
    let err = error(&chunk_job("      tasklet: { type: noop }\n"));
    assert!(
        err.contains(
            "job.yaml:8:7: element `s` has both `reader` and `tasklet`: give only one kind"
        ),
        "{err}"
    );
    let err = error(&chunk_job("      ref: decider\n"));
    assert!(
        err.contains("element `s` has both `reader` and `ref`"),
        "{err}"
    );
    let err = error(
        "id: j\nsteps:\n  - name: a\n    tasklet: { type: noop }\n    properties: { x: 1 }\n",
    );
    assert!(
        err.contains("job.yaml:5:5: `properties` in step `a` belongs to a decision given by `ref`, or to a component"),
        "{err}"
    );
}

#[test]
fn transition_rules_join_their_elements_and_may_be_empty() {
    let base = "id: j\nflow:\n  start-element: a\n  elements:\n    a: { tasklet: { type: noop } }\n    b: { tasklet: { type: noop } }\n";
    let empty = parse(&format!("{base}  transition-rules:\n"));
    assert!(empty.element("a").unwrap().transitions.is_empty());
    let rules = parse(&format!(
        "{base}  transition-rules:\n    - {{ from: a, on: COMPLETED, to: b }}\n    - {{ from: b, on: '*', end: true }}\n"
    ));
    let a = rules.element("a").unwrap();
    assert_eq!(a.transitions.len(), 1);
    assert_eq!(a.transitions[0].on.value, "COMPLETED");
    let err = error(&format!(
        "{base}  transition-rules:\n    - {{ from: a, on: COMPLETED, to: c }}\n"
    ));
    assert!(
        err.contains("transition target of element `a`: `c` does not exist"),
        "{err}"
    );
}

#[test]
fn a_split_by_step_names_owns_its_steps() {
    let base = "id: j\nflow:\n  start-element: both\n  elements:\n    both:\n      steps: [a, b]\n    a: { tasklet: { type: noop } }\n";
    let definition = parse(&format!("{base}    b: {{ tasklet: {{ type: noop }} }}\n"));
    // The steps moved into the split's flows.
    assert!(definition.element("a").is_none());
    let ElementKind::Split(split) = &definition.element("both").unwrap().kind else {
        panic!("not a split");
    };
    let names: Vec<&str> = split
        .flows
        .iter()
        .map(|f| f.elements[0].name.value.as_str())
        .collect();
    assert_eq!(names, ["a", "b"]);

    let err = error(&format!(
        "{base}    b: {{ tasklet: {{ type: noop }}, next: a }}\n"
    ));
    assert!(
        err.contains("job.yaml:8:5: step `b` runs in split `both`, which goes on by its own transitions: remove the step's `transitions` and `next`"),
        "{err}"
    );
    let err = error(
        "id: j\nflow:\n  start-element: x\n  elements:\n    x: { steps: [a] }\n    y: { steps: [a] }\n    a: { tasklet: { type: noop } }\n",
    );
    assert!(
        err.contains("job.yaml:6:18: step `a` of split `y` already runs in split `x`"),
        "{err}"
    );
    let err = error(
        "id: j\nsteps:\n  - name: both\n    steps: [a]\n  - name: a\n    tasklet: { type: noop }\n",
    );
    assert!(
        err.contains(
            "a split given as `steps: [NAME, ...]` names elements of a `flow`'s `elements`"
        ),
        "{err}"
    );
}

#[test]
fn execution_context_promotion_takes_a_list_or_keys() {
    let yaml = |promotion: &str| {
        format!(
            "id: j\nsteps:\n  - name: a\n    tasklet: {{ type: noop }}\n    execution-context-promotion: {promotion}\n"
        )
    };
    assert_eq!(
        parse(&yaml("[x, y]")).element("a").unwrap().promote_keys,
        ["x", "y"]
    );
    assert_eq!(
        parse(&yaml("{ keys: [x] }"))
            .element("a")
            .unwrap()
            .promote_keys,
        ["x"]
    );
    let err = error(&yaml("{ job-level-keys: { x: y } }"));
    assert!(err.contains("unknown key `job-level-keys` in `execution-context-promotion` of step `a` (expected one of: keys)"), "{err}");
}
