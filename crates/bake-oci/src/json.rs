//! Canonical JSON: the only way bake turns a JSON value it writes into bytes.

use serde_json::Value;

/// Serialises `v` compactly with the keys of every object sorted bytewise.
///
/// The output does not depend on how `serde_json::Map` orders its keys (a
/// crate elsewhere in the build may turn on `preserve_order`), so two values
/// that compare equal always give the same bytes, and so the same digest.
/// Strings are escaped exactly as `serde_json` does it (`"`, `\` and control
/// characters only; everything else is written as UTF-8).
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v);
    out
}

fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(out, map.iter()),
    }
}

/// Writes an object from its entries in whatever order the map yields
/// them (sorted without serde_json's `preserve_order`, insertion order with
/// it): sorting here is what makes the output independent of that.
fn write_object<'a>(out: &mut Vec<u8>, entries: impl Iterator<Item = (&'a String, &'a Value)>) {
    let mut entries: Vec<(&String, &Value)> = entries.collect();
    entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    out.push(b'{');
    for (i, (k, val)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(out, k);
        out.push(b':');
        write_value(out, val);
    }
    out.push(b'}');
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_at_every_level_and_is_compact() {
        let v = json!({"b": 1, "a": {"z": [ {"y": true, "x": null} ], "m": "s"}, "B": 2.5, "": -3});
        assert_eq!(
            String::from_utf8(canonical_json(&v)).unwrap(),
            r#"{"":-3,"B":2.5,"a":{"m":"s","z":[{"x":null,"y":true}]},"b":1}"#
        );
    }

    #[test]
    fn sorts_whatever_order_the_map_yields() {
        // serde_json's Map is sorted unless some crate in the build turns on
        // `preserve_order`; feed entries in reverse to test the sort itself.
        let keys: Vec<String> = ["b", "a", "é", "Z", "aa"].iter().map(|s| s.to_string()).collect();
        let vals: Vec<Value> = (0..keys.len()).map(|i| json!(i)).collect();
        for order in [
            keys.iter().zip(&vals).collect::<Vec<_>>(),
            keys.iter().zip(&vals).rev().collect(),
        ] {
            let mut out = Vec::new();
            write_object(&mut out, order.into_iter());
            assert_eq!(out, r#"{"Z":3,"a":1,"aa":4,"b":0,"é":2}"#.as_bytes());
        }
    }

    #[test]
    fn sorts_bytewise_not_by_char_or_case() {
        // 'Z' (0x5a) < '_' (0x5f) < 'a' (0x61) < 'z' < 'é' (0xc3 0xa9)
        let v = json!({"é": 1, "z": 0, "a": 2, "_": 3, "Z": 4});
        assert_eq!(
            canonical_json(&v),
            r#"{"Z":4,"_":3,"a":2,"z":0,"é":1}"#.as_bytes()
        );
    }

    #[test]
    fn escapes_like_serde_json() {
        for s in [
            "plain",
            "quote\" back\\slash",
            "ctl\u{0}\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "ünï/cödé ✓ 🦀",
            "\u{7f}",
        ] {
            let v = Value::String(s.to_owned());
            assert_eq!(canonical_json(&v), serde_json::to_vec(&v).unwrap(), "{s:?}");
            let back: Value = serde_json::from_slice(&canonical_json(&v)).unwrap();
            assert_eq!(back, v);
        }
    }

    /// Found by `cargo fuzz run manifest` (the input is
    /// `fuzz/corpus/manifest/long-integer-33-digits.json`): without
    /// serde_json's `float_roundtrip`, a number too long for a u64 (or with
    /// more digits than an f64 holds) parsed to an f64 that prints to text
    /// which parses back to a *different* f64, so a config taken from a base
    /// image changed value, and digest, each time it was canonicalised.
    #[test]
    fn long_numbers_survive_canonical_json() {
        for text in [
            "555555555555555555555555555555555",
            "-5555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555555",
            "18446744073709551616",
            "123456789012345678901234567890.123456789",
            "0.30000000000000004441",
            "2.2250738585072011e-308",
            "1.7976931348623157e308",
            r#"{"config":{"Labels":{"n":"1"},"Memory":9007199254740993.0000001,"x":[1e23,8.41e21]}}"#,
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let canonical = canonical_json(&v);
            let back: Value = serde_json::from_slice(&canonical).unwrap();
            assert_eq!(back, v, "{text} -> {}", String::from_utf8_lossy(&canonical));
            assert_eq!(canonical_json(&back), canonical, "{text}");
        }
    }

    #[test]
    fn byte_identical_across_runs_with_many_keys() {
        // Keys inserted in a scrambled order.
        let labels: serde_json::Map<String, Value> = (0..200)
            .map(|i| (format!("label.{}", (i * 7919) % 200), json!(i)))
            .collect();
        let v = json!({"config": {"Labels": labels}, "annotations": labels});
        let first = canonical_json(&v);
        for _ in 0..50 {
            // Rebuild the value each time so insertion order cannot be what saves us.
            let rebuilt: Value = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
            assert_eq!(canonical_json(&rebuilt), first);
        }
        let text = String::from_utf8(first).unwrap();
        let mut keys: Vec<String> = (0..200).map(|i| format!("\"label.{i}\"")).collect();
        keys.sort();
        // Within the "annotations" object (written first), keys appear in sorted order.
        let positions: Vec<usize> = keys.iter().map(|k| text.find(k.as_str()).unwrap()).collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "keys are not sorted: {text}"
        );
        assert!(
            text.starts_with(r#"{"annotations":{"label.0":0,"label.1":"#),
            "{text}"
        );
    }
}
