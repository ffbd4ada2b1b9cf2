//! Reading a few fields of provider and client JSON in one pass, without building a
//! `serde_json::Value`: every other field is skipped unparsed.
//!
//! Every value is read leniently ([`Lenient`]): one of the shape a [`Shape`] type
//! takes is read, and any other JSON value is skipped and reads as absent, as a
//! lookup in a `Value` would find nothing. Only input that is not JSON is an error.
//! Field names are recognised without allocating them ([`Key`]).

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::marker::PhantomData;

/// What a type makes of each JSON shape; a shape it does not take reads as `None`.
pub trait Shape: Sized {
    /// An object; by default skipped.
    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        skip_map(map).map(|()| None)
    }
    /// A string.
    fn string(v: &str) -> Option<Self> {
        let _ = v;
        None
    }
    /// A non-negative integer.
    fn unsigned(v: u64) -> Option<Self> {
        let _ = v;
        None
    }
    /// `true` or `false`.
    fn boolean(v: bool) -> Option<Self> {
        let _ = v;
        None
    }
}

/// Skips the rest of an object.
pub fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// A value read leniently: `Some` when it has a shape `T` takes.
pub struct Lenient<T>(pub Option<T>);

impl<'de, T: Shape> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Lenient<T>, D::Error> {
        d.deserialize_any(Any::<T>(PhantomData)).map(Lenient)
    }
}

struct Any<T>(PhantomData<T>);

impl<'de, T: Shape> Visitor<'de> for Any<T> {
    type Value = Option<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<T>, E> {
        Ok(T::string(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Option<T>, E> {
        Ok(T::unsigned(v))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Option<T>, E> {
        Ok(T::boolean(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Option<T>, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Option<T>, E> {
        Ok(None)
    }
}

/// Reads the next value of `map` leniently.
pub fn next<'de, T: Shape, A: MapAccess<'de>>(map: &mut A) -> Result<Option<T>, A::Error> {
    map.next_value::<Lenient<T>>().map(|l| l.0)
}

/// Reads `json` leniently: what is not of a shape `T` takes is `T::default()`.
pub fn from_slice<T: Shape + Default>(json: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice::<Lenient<T>>(json).map(|l| l.0.unwrap_or_default())
}

impl Shape for String {
    fn string(v: &str) -> Option<String> {
        Some(v.to_string())
    }
}

impl Shape for u64 {
    fn unsigned(v: u64) -> Option<u64> {
        Some(v)
    }
}

impl Shape for bool {
    fn boolean(v: bool) -> Option<bool> {
        Some(v)
    }
}

/// The field names a reader knows, from a name; every other name is one value.
pub trait Names: Sized {
    /// The field `name` is.
    fn named(name: &str) -> Self;
}

/// An object key read as a [`Names`] value, without allocating it.
pub struct Key<N>(pub N);

impl<'de, N: Names> Deserialize<'de> for Key<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<N>, D::Error> {
        struct Name<N>(PhantomData<N>);
        impl<N: Names> Visitor<'_> for Name<N> {
            type Value = Key<N>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<N>, E> {
                Ok(Key(N::named(v)))
            }
        }
        d.deserialize_str(Name(PhantomData))
    }
}

/// The next key of `map`, as a field of `N`.
pub fn next_key<'de, N: Names, A: MapAccess<'de>>(map: &mut A) -> Result<Option<N>, A::Error> {
    map.next_key::<Key<N>>().map(|k| k.map(|k| k.0))
}
