use super::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeSeed;
use serde_json::json;

type Map = serde_json::Map<String, Value>;

#[derive(Debug, Clone)]
enum Op {
    Insert(String, i64),
    Remove(String),
    Get(String),
    GetMut(String, i64),
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d", "e", "f"]).prop_map(str::to_owned)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (key(), any::<i64>()).prop_map(|(k, v)| Op::Insert(k, v)),
        key().prop_map(Op::Remove),
        key().prop_map(Op::Get),
        (key(), any::<i64>()).prop_map(|(k, v)| Op::GetMut(k, v)),
    ]
}

/// Applies `op` to both; returns what each returned.
fn apply(record: &mut Record, map: &mut Map, op: &Op) -> (Option<Value>, Option<Value>) {
    match op {
        Op::Insert(k, v) => (
            record.insert(k.clone(), json!(v)),
            map.insert(k.clone(), json!(v)),
        ),
        Op::Remove(k) => (record.remove(k), map.shift_remove(k)),
        Op::Get(k) => (record.get(k).cloned(), map.get(k).cloned()),
        Op::GetMut(k, v) => {
            let a = record
                .get_mut(k)
                .map(|slot| std::mem::replace(slot, json!(v)));
            let b = map.get_mut(k).map(|slot| std::mem::replace(slot, json!(v)));
            (a, b)
        }
    }
}

fn assert_same(record: &Record, map: &Map) {
    assert_eq!(record.len(), map.len());
    assert_eq!(record.is_empty(), map.is_empty());
    let entries: Vec<(&String, &Value)> = record.iter().collect();
    assert_eq!(entries, map.iter().collect::<Vec<_>>());
    assert_eq!(
        record.keys().collect::<Vec<_>>(),
        map.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        record.iter().rev().collect::<Vec<_>>(),
        map.iter().rev().collect::<Vec<_>>()
    );
    assert_eq!(
        serde_json::to_string(record).unwrap(),
        serde_json::to_string(map).unwrap()
    );
    assert_eq!(&Map::from(record.clone()), map);
    assert_eq!(record, &Record::from(map.clone()));
    for key in ["a", "b", "c", "d", "e", "f"] {
        assert_eq!(record.contains_key(key), map.contains_key(key));
    }
}

/// Applies `ops` to both, checking after each that they still agree.
fn replay(record: &mut Record, map: &mut Map, ops: &[Op]) -> Result<(), TestCaseError> {
    for op in ops {
        let (a, b) = apply(record, map, op);
        prop_assert_eq!(a, b, "{:?}", op);
        assert_same(record, map);
    }
    Ok(())
}

proptest! {
    #[test]
    fn behaves_like_an_ordered_map(ops in prop::collection::vec(op(), 0..40)) {
        let mut record = Record::new();
        let mut map = Map::new();
        replay(&mut record, &mut map, &ops)?;
    }

    #[test]
    fn behaves_like_an_ordered_map_from_shared_fields(
        ops in prop::collection::vec(op(), 0..40),
    ) {
        // Starting on fields that already name some keys (absent) must not change
        // anything observable.
        let mut record = Record::with_fields(Fields::new(["c", "a", "f"]));
        let mut map = Map::new();
        replay(&mut record, &mut map, &ops)?;
    }

    #[test]
    fn behaves_like_an_ordered_map_from_text(
        ops in prop::collection::vec(op(), 0..40),
        touched in prop::collection::vec(key(), 0..4),
    ) {
        // Values still in the row's text behave like the strings they hold, before and
        // after being read by reference (which makes a `Value` of them).
        let fields = Fields::new(["b", "e", "a", "c"]);
        let text = "xxyyzzé".to_string();
        let mut record =
            Record::from_text(fields, text, [(0, 0..2), (1, 2..4), (3, 4..6), (2, 6..8)])
                .unwrap();
        let mut map = Map::new();
        for (key, value) in [("b", "xx"), ("e", "yy"), ("a", "é"), ("c", "zz")] {
            map.insert(key.to_string(), json!(value));
        }
        for key in &touched {
            prop_assert_eq!(record.get(key), map.get(key));
        }
        assert_same(&record, &map);
        let copy = record.clone();
        replay(&mut record, &mut map, &ops)?;
        prop_assert_eq!(copy.len(), 4);
    }

    #[test]
    fn deserializes_like_a_map(
        entries in prop::collection::vec((key(), any::<i64>()), 0..10),
        template in prop::collection::vec(key(), 0..6),
    ) {
        let text = format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("\"{k}\":{v}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let map: Map = serde_json::from_str(&text).unwrap();
        let fields = Fields::new(template);
        let mut json = serde_json::Deserializer::from_str(&text);
        let record = RecordSeed::new(&fields).deserialize(&mut json).unwrap();
        assert_same(&record, &map);
        let plain: Record = serde_json::from_str(&text).unwrap();
        assert_same(&plain, &map);
    }
}

#[test]
fn records_of_one_shape_share_their_fields_when_a_key_is_added() {
    let fields = Fields::new(["id", "city"]);
    let mut records: Vec<Record> = (0..100)
        .map(|n| {
            Record::from_values(
                Arc::clone(&fields),
                vec![Some(json!(n)), Some(json!("lyon"))],
            )
            .unwrap()
        })
        .collect();
    for record in &mut records {
        assert_eq!(record.insert("country".to_string(), json!("FR")), None);
    }
    let first = Arc::clone(records[0].fields());
    assert!(!Arc::ptr_eq(&first, &fields));
    assert_eq!(first.names(), ["id", "city", "country"]);
    assert!(records.iter().all(|r| Arc::ptr_eq(r.fields(), &first)));

    // Removing and re-inserting a key moves it last, shared as well.
    for (n, record) in records.iter_mut().enumerate() {
        assert_eq!(record.remove("id"), Some(json!(n)));
        assert_eq!(record.remove("id"), None);
    }
    for (n, record) in records.iter_mut().enumerate() {
        record.insert("id".to_string(), json!(n));
    }
    let moved = Arc::clone(records[0].fields());
    assert_eq!(moved.names(), ["city", "country", "id"]);
    assert!(records.iter().all(|r| Arc::ptr_eq(r.fields(), &moved)));
    assert_eq!(
        serde_json::to_string(&records[7]).unwrap(),
        r#"{"city":"lyon","country":"FR","id":7}"#
    );
}

#[test]
fn records_built_key_by_key_share_their_fields() {
    let build = |n: i64| {
        let mut record = Record::new();
        record.insert("n".to_string(), json!(n));
        record.insert("square".to_string(), json!(n * n));
        record
    };
    let (a, b) = (build(2), build(3));
    assert!(Arc::ptr_eq(a.fields(), b.fields()));
    assert_ne!(a, b);
    assert_eq!(a, build(2));
}

#[test]
fn equality_ignores_order() {
    let a: Record = [("x".to_string(), json!(1)), ("y".to_string(), json!(2))]
        .into_iter()
        .collect();
    let b: Record = [("y".to_string(), json!(2)), ("x".to_string(), json!(1))]
        .into_iter()
        .collect();
    assert_eq!(a, b);
    let mut c = b.clone();
    c.insert("z".to_string(), Value::Null);
    assert_ne!(a, c);
    c.remove("z");
    assert_eq!(a, c);
}

#[test]
fn many_fields_are_found_through_the_index() {
    let names: Vec<String> = (0..40).map(|n| format!("f{n}")).collect();
    let fields = Fields::new(names.iter().cloned().chain(["f3".to_string()]));
    assert_eq!(fields.len(), 40);
    for (position, name) in names.iter().enumerate() {
        assert_eq!(fields.position(name), Some(position));
    }
    assert_eq!(fields.position("f40"), None);
    let mut record = Record::with_fields(Arc::clone(&fields));
    for (n, name) in names.iter().enumerate().rev() {
        record.insert(name.clone(), json!(n));
    }
    assert_eq!(record.len(), 40);
    assert_eq!(record["f17"], json!(17));
    assert_eq!(record.keys().next().map(String::as_str), Some("f39"));
}

#[test]
fn from_text_checks_slots_and_ranges() {
    let fields = Fields::new(["a", "b"]);
    let text = || "héllo".to_string();
    assert!(Record::from_text(Arc::clone(&fields), text(), [(2, 0..1)]).is_none());
    assert!(Record::from_text(Arc::clone(&fields), text(), [(0, 0..9)]).is_none());
    // Not a character boundary.
    assert!(Record::from_text(Arc::clone(&fields), text(), [(0, 0..2)]).is_none());
    let mut record = Record::from_text(fields, text(), [(1, 0..3), (0, 3..6)]).unwrap();
    assert_eq!(record.str_at(1), Some("hé"));
    assert_eq!(record.str_at(2), None);
    assert_eq!(
        serde_json::to_string(&record).unwrap(),
        r#"{"a":"llo","b":"hé"}"#
    );
    // Read by reference, then moved: the value read stays the same.
    let mut moved = record.clone();
    assert_eq!(moved.get("a"), Some(&json!("llo")));
    assert_eq!(moved.remove("b"), Some(json!("hé")));
    moved.insert("c".to_string(), json!(1));
    moved.insert("b".to_string(), json!(2));
    assert_eq!(moved.remove("a"), Some(json!("llo")));
    moved.insert("a".to_string(), json!(3));
    assert_eq!(
        serde_json::to_string(&moved).unwrap(),
        r#"{"c":1,"b":2,"a":3}"#
    );
    *record.get_mut("b").unwrap() = json!(5);
    assert_eq!(record.str_at(1), None);
    assert_eq!(record.get_at(1), Some(&json!(5)));
    assert_eq!(record.iter_mut().count(), 2);
    assert_eq!(
        record.into_iter().collect::<Vec<_>>(),
        [("a".to_string(), json!("llo")), ("b".to_string(), json!(5))]
    );
}

#[test]
fn from_values_rejects_more_values_than_fields() {
    let fields = Fields::new(["a"]);
    assert!(Record::from_values(Arc::clone(&fields), vec![None, None]).is_none());
    let record = Record::from_values(fields, vec![]).unwrap();
    assert!(record.is_empty());
    assert_eq!(format!("{record:?}"), "{}");
}

#[test]
fn debug_shows_a_map() {
    let record: Record = [("a".to_string(), json!(1))].into_iter().collect();
    assert_eq!(format!("{record:?}"), r#"{"a": Number(1)}"#);
    assert_eq!(Value::from(record), json!({"a": 1}));
}

#[test]
fn shared_fields_do_not_grow_with_changing_keys() {
    let mut shared = SharedFields::new();
    for n in 0..200 {
        let record = shared
            .from_slice(format!(r#"{{"id":{n},"k{n}":true}}"#).as_bytes())
            .unwrap();
        assert_eq!(record.len(), 2);
        assert!(record.fields().len() <= 2 * 2 + 8 + 2);
    }
    assert!(shared.fields().len() <= 12);
    let first = shared.from_slice(br#"{"a":1,"b":2}"#).unwrap();
    let second = shared.from_slice(br#"{"a":3,"b":4}"#).unwrap();
    assert!(Arc::ptr_eq(first.fields(), second.fields()));
    assert!(shared.from_slice(b"[1]").is_err());
}
