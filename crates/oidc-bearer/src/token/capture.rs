//! Decoding a verified payload into the caller's claims type and reading the registered claims in
//! the same pass, so the payload is parsed once instead of twice.
//!
//! serde_json does all the parsing. We wrap its deserializer and only watch: the top-level keys, and
//! the values of `iss`, `aud`, `exp`, `nbf` and `iat`, classified exactly as [`ClaimValue`] would
//! classify them. Whenever we cannot see everything — the caller's type did not walk the top-level
//! object through us, a registered claim came twice, a value went through a serde_json private
//! type (`RawValue`) — the capture is given up and the caller parses [`RawClaims`] the usual way.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor,
};

use super::{ClaimValue, RawClaims};

/// Decodes `payload` into `T`, and returns the registered claims when they could be captured in
/// the same pass.
pub(crate) fn decode_with_claims<T: DeserializeOwned>(
    payload: &[u8],
) -> (Result<T, serde_json::Error>, Option<RawClaims>) {
    let mut capture = Capture::default();
    // One UTF-8 check of the whole payload (fast on ASCII) lets serde_json read strings without
    // checking each again; invalid UTF-8 is refused either way.
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(_) => return (serde_json::from_slice(payload), None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = T::deserialize(Tap {
        inner: &mut de,
        ctx: Top {
            capture: &mut capture,
        },
    })
    .and_then(|value| de.end().map(|()| value));
    let claims =
        (result.is_ok() && capture.complete && !capture.unreliable).then_some(capture.claims);
    (result, claims)
}

#[derive(Default)]
struct Capture {
    claims: RawClaims,
    seen: [bool; 5],
    /// The top-level object was walked to its end through us.
    complete: bool,
    /// Something happened that we could not observe faithfully.
    unreliable: bool,
}

#[derive(Clone, Copy)]
enum Claim {
    Iss,
    Aud,
    Exp,
    Nbf,
    Iat,
}

impl Claim {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "iss" => Self::Iss,
            "aud" => Self::Aud,
            "exp" => Self::Exp,
            "nbf" => Self::Nbf,
            "iat" => Self::Iat,
            _ => return None,
        })
    }

    fn slot(self, claims: &mut RawClaims) -> &mut ClaimValue {
        match self {
            Self::Iss => &mut claims.iss,
            Self::Aud => &mut claims.aud,
            Self::Exp => &mut claims.exp,
            Self::Nbf => &mut claims.nbf,
            Self::Iat => &mut claims.iat,
        }
    }
}

/// How a [`Tap`] wraps the visitors it hands to the inner deserializer.
trait Context<'de>: Sized {
    type Wrapped<V: Visitor<'de>>: Visitor<'de, Value = V::Value>;
    fn wrap<V: Visitor<'de>>(self, visitor: V) -> Self::Wrapped<V>;
    /// A value went through a serde_json private newtype (`RawValue`): we cannot see it.
    fn unobservable(self);
}

/// A deserializer that passes everything to `inner`, wrapping each visitor by `ctx`.
struct Tap<D, C> {
    inner: D,
    ctx: C,
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method($($arg,)* self.ctx.wrap(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>, C: Context<'de>> Deserializer<'de> for Tap<D, C> {
    type Error = D::Error;

    forward! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        // serde_json's private newtypes (`$serde_json::private::RawValue`) hand the raw text to a
        // map visitor: nothing we could classify.
        if name.starts_with('$') {
            self.ctx.unobservable();
            return self.inner.deserialize_newtype_struct(name, visitor);
        }
        self.inner
            .deserialize_newtype_struct(name, self.ctx.wrap(visitor))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        // serde_json skips an ignored value without showing it to the visitor: ask for it instead
        // (every wrapped position — the payload, its keys, the registered claims — must be seen).
        self.inner.deserialize_any(self.ctx.wrap(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor passing every call to `inner`, after `$on` (given the context and a description of
/// the value) has looked at it.
macro_rules! visitor_forwarding {
    ($ty:ident, $on:ident) => {
        impl<'de, V: Visitor<'de>> Visitor<'de> for $ty<'_, V> {
            type Value = V::Value;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.inner.expecting(f)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Other);
                self.inner.visit_bool(v)
            }
            fn visit_i8<E: de::Error>(self, v: i8) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_i8(v)
            }
            fn visit_i16<E: de::Error>(self, v: i16) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_i16(v)
            }
            fn visit_i32<E: de::Error>(self, v: i32) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_i32(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v as f64));
                self.inner.visit_i64(v)
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<V::Value, E> {
                // ClaimValue has no i128 arm: its default turns this into an error.
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_i128(v)
            }
            fn visit_u8<E: de::Error>(self, v: u8) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_u8(v)
            }
            fn visit_u16<E: de::Error>(self, v: u16) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_u16(v)
            }
            fn visit_u32<E: de::Error>(self, v: u32) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_u32(v)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v as f64));
                self.inner.visit_u64(v)
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_u128(v)
            }
            fn visit_f32<E: de::Error>(self, v: f32) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v.into()));
                self.inner.visit_f32(v)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Num(v));
                self.inner.visit_f64(v)
            }
            fn visit_char<E: de::Error>(self, v: char) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_char(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Str(v));
                self.inner.visit_str(v)
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Str(v));
                self.inner.visit_borrowed_str(v)
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Str(&v));
                self.inner.visit_string(v)
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_bytes(v)
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_borrowed_bytes(v)
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_byte_buf(v)
            }
            fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Other);
                self.inner.visit_none()
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
                // `Option<T>` of a present value: look through it at the value itself.
                self.inner.visit_some(Tap {
                    inner: d,
                    ctx: self.ctx,
                })
            }
            fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
                $on(self.ctx, Seen::Other);
                self.inner.visit_unit()
            }
            fn visit_newtype_struct<D: Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<V::Value, D::Error> {
                self.inner.visit_newtype_struct(Tap {
                    inner: d,
                    ctx: self.ctx,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
                $ty::<V>::seq(self.ctx, self.inner, seq)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
                $ty::<V>::map(self.ctx, self.inner, map)
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
                $on(self.ctx, Seen::Unobservable);
                self.inner.visit_enum(data)
            }
        }
    };
}

/// What a visitor was shown.
enum Seen<'a> {
    Str(&'a str),
    Num(f64),
    /// A type [`ClaimValue`] maps to `Other` (bool, null).
    Other,
    /// A call [`ClaimValue`]'s visitor handles differently (or not at all).
    Unobservable,
}

// ---- The top level: the payload object. ----

struct Top<'c> {
    capture: &'c mut Capture,
}

impl<'de, 'c> Context<'de> for Top<'c> {
    type Wrapped<V: Visitor<'de>> = TopVisitor<'c, V>;
    fn wrap<V: Visitor<'de>>(self, inner: V) -> TopVisitor<'c, V> {
        TopVisitor { ctx: self, inner }
    }
    fn unobservable(self) {
        self.capture.unreliable = true;
    }
}

struct TopVisitor<'c, V> {
    ctx: Top<'c>,
    inner: V,
}

/// At the top level only the object itself matters; any scalar makes the capture incomplete.
fn on_top(_: Top<'_>, _: Seen<'_>) {}

impl<'de, V: Visitor<'de>> TopVisitor<'_, V> {
    fn seq<A: SeqAccess<'de>>(_: Top<'_>, inner: V, seq: A) -> Result<V::Value, A::Error> {
        inner.visit_seq(seq)
    }

    fn map<A: MapAccess<'de>>(ctx: Top<'_>, inner: V, map: A) -> Result<V::Value, A::Error> {
        inner.visit_map(TopMap {
            inner: map,
            capture: ctx.capture,
            current: None,
        })
    }
}

visitor_forwarding!(TopVisitor, on_top);

/// The payload's entries: keys are watched, and the values of registered claims classified.
struct TopMap<'c, A> {
    inner: A,
    capture: &'c mut Capture,
    current: Option<Claim>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TopMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.current = None;
        let key = self.inner.next_key_seed(Seeded {
            seed,
            ctx: Key {
                current: &mut self.current,
                unreliable: &mut self.capture.unreliable,
            },
        })?;
        if key.is_none() {
            self.capture.complete = true;
        }
        Ok(key)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        let Some(claim) = self.current.take() else {
            return self.inner.next_value_seed(seed);
        };
        let seen = &mut self.capture.seen[claim as usize];
        if *seen {
            // A duplicate: serde's derive for RawClaims refuses it; let it.
            self.capture.unreliable = true;
            return self.inner.next_value_seed(seed);
        }
        *seen = true;
        let mut value = Value::Pending;
        let result = self.inner.next_value_seed(Seeded {
            seed,
            ctx: Classify { value: &mut value },
        });
        match value {
            Value::Done(v) => *claim.slot(&mut self.capture.claims) = v,
            Value::Pending | Value::Unobservable => self.capture.unreliable = true,
        }
        result
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

/// A seed whose deserializer is wrapped by `ctx`.
struct Seeded<S, C> {
    seed: S,
    ctx: C,
}

impl<'de, S: DeserializeSeed<'de>, C: Context<'de>> DeserializeSeed<'de> for Seeded<S, C> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.seed.deserialize(Tap {
            inner: d,
            ctx: self.ctx,
        })
    }
}

// ---- Keys: which registered claim, if any. ----

struct Key<'c> {
    current: &'c mut Option<Claim>,
    unreliable: &'c mut bool,
}

impl<'de, 'c> Context<'de> for Key<'c> {
    type Wrapped<V: Visitor<'de>> = KeyVisitor<'c, V>;
    fn wrap<V: Visitor<'de>>(self, inner: V) -> KeyVisitor<'c, V> {
        KeyVisitor { ctx: self, inner }
    }
    fn unobservable(self) {
        *self.unreliable = true;
    }
}

struct KeyVisitor<'c, V> {
    ctx: Key<'c>,
    inner: V,
}

fn on_key(ctx: Key<'_>, seen: Seen<'_>) {
    match seen {
        Seen::Str(key) => *ctx.current = Claim::from_key(key),
        // A number-like key cannot name a registered claim.
        Seen::Num(_) | Seen::Other => {}
        // A key seen as bytes (or not at all): it might have been one.
        Seen::Unobservable => *ctx.unreliable = true,
    }
}

impl<'de, V: Visitor<'de>> KeyVisitor<'_, V> {
    fn seq<A: SeqAccess<'de>>(_: Key<'_>, inner: V, seq: A) -> Result<V::Value, A::Error> {
        inner.visit_seq(seq)
    }
    fn map<A: MapAccess<'de>>(_: Key<'_>, inner: V, map: A) -> Result<V::Value, A::Error> {
        inner.visit_map(map)
    }
}

visitor_forwarding!(KeyVisitor, on_key);

// ---- Values of registered claims: classified like `ClaimValue`. ----

enum Value {
    Pending,
    Done(ClaimValue),
    Unobservable,
}

struct Classify<'c> {
    value: &'c mut Value,
}

impl<'de, 'c> Context<'de> for Classify<'c> {
    type Wrapped<V: Visitor<'de>> = ClassifyVisitor<'c, V>;
    fn wrap<V: Visitor<'de>>(self, inner: V) -> ClassifyVisitor<'c, V> {
        ClassifyVisitor { ctx: self, inner }
    }
    fn unobservable(self) {
        *self.value = Value::Unobservable;
    }
}

struct ClassifyVisitor<'c, V> {
    ctx: Classify<'c>,
    inner: V,
}

fn on_value(ctx: Classify<'_>, seen: Seen<'_>) {
    *ctx.value = match seen {
        Seen::Str(s) => Value::Done(ClaimValue::Str(s.to_owned())),
        Seen::Num(n) => Value::Done(ClaimValue::Num(n)),
        Seen::Other => Value::Done(ClaimValue::Other),
        Seen::Unobservable => Value::Unobservable,
    };
}

impl<'de, V: Visitor<'de>> ClassifyVisitor<'_, V> {
    fn seq<A: SeqAccess<'de>>(ctx: Classify<'_>, inner: V, seq: A) -> Result<V::Value, A::Error> {
        let mut elements = Elements {
            strings: Vec::new(),
            all_strings: true,
            unobservable: false,
        };
        let result = inner.visit_seq(ElementsAccess {
            inner: seq,
            elements: &mut elements,
        });
        // As ClaimValue: an array of strings, or `Other` as soon as one element is not a string.
        *ctx.value = if elements.unobservable {
            Value::Unobservable
        } else if elements.all_strings {
            Value::Done(ClaimValue::StrArray(elements.strings))
        } else {
            Value::Done(ClaimValue::Other)
        };
        result
    }

    fn map<A: MapAccess<'de>>(ctx: Classify<'_>, inner: V, map: A) -> Result<V::Value, A::Error> {
        *ctx.value = Value::Done(ClaimValue::Other);
        inner.visit_map(map)
    }
}

visitor_forwarding!(ClassifyVisitor, on_value);

// ---- Elements of an array claim (`aud`). ----

struct Elements {
    strings: Vec<String>,
    all_strings: bool,
    unobservable: bool,
}

struct ElementsAccess<'c, A> {
    inner: A,
    elements: &'c mut Elements,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for ElementsAccess<'_, A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        let mut value = Value::Pending;
        let element = self.inner.next_element_seed(Seeded {
            seed,
            ctx: Classify { value: &mut value },
        })?;
        if element.is_some() {
            match value {
                Value::Done(ClaimValue::Str(s)) => self.elements.strings.push(s),
                Value::Done(_) => self.elements.all_strings = false,
                Value::Pending | Value::Unobservable => self.elements.unobservable = true,
            }
        }
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{DefaultClaims, RegisteredClaims};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Small {
        sub: String,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        iss: String,
        aud: Vec<String>,
        exp: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Raw {
        exp: Box<serde_json::value::RawValue>,
    }

    /// The capture, when it succeeds, equals what serde's derive for RawClaims reads.
    fn agrees<T: DeserializeOwned>(payload: &str) -> (bool, bool) {
        let (result, captured) = decode_with_claims::<T>(payload.as_bytes());
        let reference = serde_json::from_str::<RawClaims>(payload);
        if let Some(captured) = &captured {
            let reference = reference
                .as_ref()
                .expect("captured a payload serde refuses");
            for (a, b) in [
                (&captured.iss, &reference.iss),
                (&captured.aud, &reference.aud),
                (&captured.exp, &reference.exp),
                (&captured.nbf, &reference.nbf),
                (&captured.iat, &reference.iat),
            ] {
                assert_eq!(a, b, "{payload}");
            }
        }
        (result.is_ok(), captured.is_some())
    }

    #[test]
    fn captured_claims_equal_a_separate_parse() {
        let payloads = [
            r#"{"iss":"https://i","aud":"a","exp":2000000000,"nbf":1.5,"iat":1,"sub":"s"}"#,
            r#"{"sub":"s","aud":["a","b"],"iss":"https://i","exp":2000000000}"#,
            r#"{"sub":"s","aud":["a",1],"iss":["x"],"exp":"123","iat":{"a":[1]},"nbf":null}"#,
            r#"{"sub":"s","e\u0078p":5,"i\u0073s":"esc\"aped","aud":[],"iat":-3}"#,
            r#"{"sub":"s","nested":{"exp":1,"iss":"inner"},"exp":7,"aud":"a","iss":"x"}"#,
            r#"{"sub":"s","exp":true,"aud":[null],"iss":"x"}"#,
            r#"{"sub":"s"}"#,
            r#"{"sub":"s","exp":1e3,"iss":"x","aud":"a"}"#,
        ];
        for payload in payloads {
            assert_eq!(
                agrees::<DefaultClaims>(payload).1,
                agrees::<DefaultClaims>(payload).0,
                "{payload}"
            );
            agrees::<serde_json::Value>(payload);
            agrees::<Small>(payload);
            agrees::<de::IgnoredAny>(payload);
            agrees::<RegisteredClaims>(payload);
            agrees::<Typed>(payload);
        }
        // The common case is captured, whatever the caller's type.
        let common = payloads[0];
        assert_eq!(agrees::<Small>(common), (true, true));
        assert_eq!(agrees::<serde_json::Value>(common), (true, true));
        assert_eq!(agrees::<de::IgnoredAny>(common), (true, true));
        assert_eq!(agrees::<RegisteredClaims>(common), (true, true));
        assert_eq!(agrees::<DefaultClaims>(common), (true, true));
    }

    #[test]
    fn what_cannot_be_observed_is_not_captured() {
        let rows = [
            // A duplicate registered claim: serde's derive refuses the payload.
            r#"{"sub":"s","exp":1,"exp":2}"#,
            // Not an object.
            r#"["s"]"#,
            // Trailing garbage.
            r#"{"sub":"s"} x"#,
        ];
        for payload in rows {
            let (_, captured) = decode_with_claims::<serde_json::Value>(payload.as_bytes());
            assert!(captured.is_none(), "{payload}");
        }
        let (result, captured) = decode_with_claims::<Raw>(br#"{"exp":5}"#);
        assert!(result.is_ok() && captured.is_none());
        // The caller's type failing leaves the claims to a separate parse.
        let (result, captured) = decode_with_claims::<Typed>(br#"{"iss":"x","aud":"a"}"#);
        assert!(result.is_err() && captured.is_none());
    }
}
