//! Values between JSON and Automerge: writing a JSON value into a document touching only what
//! differs (so concurrent edits of other fields merge), and reading an object back as JSON.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, ObjId, ObjType, Prop, ReadDoc, ScalarValue, Value as AmValue, ValueRef};
use serde_json::{Map, Value};

/// Makes `obj[key]` equal `value`, touching only what differs, so concurrent edits of other
/// fields merge cleanly.
pub(crate) fn assign(am: &mut AutoCommit, obj: &ObjId, key: &str, value: &Value) {
    if let Value::Object(fields) = value {
        if let Ok(Some((AmValue::Object(ObjType::Map), existing))) = am.get(obj, key) {
            let old_keys: Vec<String> = am.keys(&existing).collect();
            for old in old_keys {
                if !fields.contains_key(&old) {
                    am.delete(&existing, old.as_str()).expect("map key");
                }
            }
            for (k, v) in fields {
                assign(am, &existing, k, v);
            }
            return;
        }
    } else if let Ok(Some((AmValue::Scalar(current), _))) = am.get(obj, key) {
        if scalar_to_json(&current) == *value {
            return;
        }
    } else if let (Value::Array(items), Ok(Some((AmValue::Object(ObjType::List), existing)))) =
        (value, am.get(obj, key))
        && obj_to_json(am, &existing) == Value::Array(items.clone())
    {
        return;
    }
    put_json(am, obj, key.into(), value);
}

fn put_json(am: &mut AutoCommit, obj: &ObjId, prop: Prop, value: &Value) {
    let insert = matches!(prop, Prop::Seq(_));
    let put_object = |am: &mut AutoCommit, ty| match &prop {
        Prop::Seq(i) => am.insert_object(obj, *i, ty),
        Prop::Map(k) => am.put_object(obj, k.as_str(), ty),
    };
    match value {
        Value::Object(fields) => {
            let child = put_object(am, ObjType::Map).expect("valid target");
            for (k, v) in fields {
                put_json(am, &child, k.as_str().into(), v);
            }
        }
        Value::Array(items) => {
            let child = put_object(am, ObjType::List).expect("valid target");
            for (i, v) in items.iter().enumerate() {
                put_json(am, &child, Prop::Seq(i), v);
            }
        }
        scalar => {
            let scalar = json_to_scalar(scalar);
            let result = match prop {
                Prop::Seq(i) if insert => am.insert(obj, i, scalar),
                Prop::Seq(i) => am.put(obj, i, scalar),
                Prop::Map(k) => am.put(obj, k.as_str(), scalar),
            };
            result.expect("valid target");
        }
    }
}

/// The same tree as [`put_json`] writes, as a value Automerge can create in one batch (two
/// splices of its op set instead of one per node).
pub(crate) fn to_hydrate(value: &Value) -> automerge::hydrate::Value {
    use automerge::hydrate;
    match value {
        Value::Object(fields) => {
            let map: std::collections::HashMap<String, hydrate::Value> =
                fields.iter().map(|(k, v)| (k.clone(), to_hydrate(v))).collect();
            hydrate::Map::from(map).into()
        }
        Value::Array(items) => items.iter().map(to_hydrate).collect::<Vec<_>>().into(),
        scalar => hydrate::Value::scalar(json_to_scalar(scalar)),
    }
}

fn json_to_scalar(value: &Value) -> ScalarValue {
    match value {
        Value::Null => ScalarValue::Null,
        Value::Bool(b) => ScalarValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ScalarValue::Int(i),
            None => ScalarValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => ScalarValue::Str(s.as_str().into()),
        Value::Array(_) | Value::Object(_) => unreachable!("objects are written by put_json"),
    }
}

fn scalar_to_json(value: &ScalarValue) -> Value {
    match value {
        ScalarValue::Str(s) => Value::String(s.to_string()),
        ScalarValue::Int(i) | ScalarValue::Timestamp(i) => Value::from(*i),
        ScalarValue::Uint(u) => Value::from(*u),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        ScalarValue::Counter(c) => Value::from(i64::from(c)),
        ScalarValue::Boolean(b) => Value::Bool(*b),
        // Not part of any vault shape: read as null so that validation refuses it.
        ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => Value::Null,
    }
}

/// Nesting read, at most: the vault's shapes go four levels below the root (a purchase's
/// price), and a copy an issuer nested thousands deep would overflow the stack of whatever
/// walks it (a crash no `catch_unwind` catches). What is deeper reads as null, which the
/// document schema refuses.
pub(crate) const MAX_JSON_DEPTH: usize = 16;

pub(crate) fn obj_to_json(am: &impl ReadDoc, obj: &ObjId) -> Value {
    obj_to_json_at(am, obj, 0)
}

fn obj_to_json_at(am: &impl ReadDoc, obj: &ObjId, depth: usize) -> Value {
    if depth >= MAX_JSON_DEPTH {
        return Value::Null;
    }
    // One pass over each object's values (a lookup per key costs a search of the object).
    match am.object_type(obj) {
        Ok(ObjType::Map | ObjType::Table) => {
            let mut map = Map::new();
            for item in am.map_range(obj, ..) {
                let value = item_to_json(am, &item.value, || item.id(), depth);
                map.insert(item.key.into_owned(), value);
            }
            Value::Object(map)
        }
        Ok(ObjType::List) => Value::Array(
            am.list_range(obj, ..).map(|item| item_to_json(am, &item.value, || item.id(), depth)).collect(),
        ),
        Ok(ObjType::Text) => Value::String(am.text(obj).unwrap_or_default()),
        Err(_) => Value::Null,
    }
}

fn item_to_json(am: &impl ReadDoc, value: &ValueRef<'_>, id: impl FnOnce() -> ObjId, depth: usize) -> Value {
    match value {
        ValueRef::Object(_) => obj_to_json_at(am, &id(), depth + 1),
        ValueRef::Scalar(_) => match value.clone().into_value() {
            AmValue::Scalar(s) => scalar_to_json(&s),
            AmValue::Object(_) => Value::Null,
        },
    }
}
