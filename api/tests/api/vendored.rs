//! Types of the vendored async-graphql that Quill's patches rewrote for speed, held to what
//! they replaced. `ObjectMap`, the map every object of an answer is made of, is a `Vec`
//! searched by name while small, with a hash index once it is large: it must behave as
//! the `IndexMap` it replaced whichever side of that size a map is on. A `UUID` is written
//! into a buffer of its own rather than through `Display`: it must read the same.

use async_graphql::{Name, ObjectMap, ScalarType as _, Value};
use uuid::Uuid;

/// The size from which a map keeps an index (`INDEXED_FROM` in the vendored crate).
const INDEXED_FROM: usize = 16;

fn name(i: usize) -> Name {
    Name::new(format!("f{i}"))
}

/// Maps of every size around the one that builds an index.
fn sizes() -> impl Iterator<Item = usize> {
    [0, 1, 2, INDEXED_FROM - 1, INDEXED_FROM, INDEXED_FROM + 1, 100].into_iter()
}

fn map_of(n: usize) -> ObjectMap<usize> {
    (0..n).map(|i| (name(i), i)).collect()
}

#[test]
fn fields_keep_the_order_they_were_inserted_in_and_are_found_by_name() {
    for n in sizes() {
        let map = map_of(n);

        assert_eq!(map.len(), n);
        assert!(map.keys().cloned().eq((0..n).map(name)));
        for i in 0..n {
            assert_eq!(map.get(name(i).as_str()), Some(&i), "f{i} of {n}");
            assert_eq!(map.get_index_of(&name(i)), Some(i));
        }
        assert_eq!(map.get("absent"), None);
    }
}

#[test]
fn inserting_a_name_again_replaces_its_value_in_place() {
    for n in sizes().filter(|&n| n > 0) {
        let mut map = map_of(n);

        assert_eq!(map.insert(name(0), 1000), Some(0));

        assert_eq!(map.len(), n);
        assert_eq!(map.first(), Some((&name(0), &1000)));
    }
}

#[test]
fn removing_a_field_keeps_the_rest_findable() {
    for n in sizes().filter(|&n| n > 2) {
        let mut shifted = map_of(n);
        let mut swapped = map_of(n);

        assert_eq!(shifted.shift_remove("f1"), Some(1));
        assert_eq!(swapped.swap_remove("f1"), Some(1));

        assert!(shifted.values().copied().eq((0..n).filter(|&i| i != 1)));
        for i in (0..n).filter(|&i| i != 1) {
            assert_eq!(shifted.get(name(i).as_str()), Some(&i));
            assert_eq!(swapped.get(name(i).as_str()), Some(&i));
        }
        assert_eq!(shifted.get("f1"), None);
        assert_eq!(swapped.get("f1"), None);
    }
}

#[test]
fn an_entry_inserts_once_and_then_finds() {
    let mut map = map_of(INDEXED_FROM - 1);

    *map.entry(Name::new("new")).or_insert(1) += 1;
    *map.entry(Name::new("new")).or_insert(1) += 1;

    assert_eq!(map.get("new"), Some(&3));
    assert_eq!(map.len(), INDEXED_FROM);
}

#[test]
fn maps_with_the_same_fields_are_equal_whatever_their_order() {
    let forward = map_of(20);
    let backward: ObjectMap<usize> = (0..20).rev().map(|i| (name(i), i)).collect();

    assert_eq!(forward, backward);
    assert_ne!(forward, map_of(19));
}

#[test]
fn a_large_map_cleared_retained_or_cloned_still_finds_its_fields() {
    let mut map = map_of(100);

    map.retain(|_, value| *value % 2 == 0);
    let cloned = map.clone();

    for i in 0..100 {
        let expected = (i % 2 == 0).then_some(&i);
        assert_eq!(map.get(name(i).as_str()), expected);
        assert_eq!(cloned.get(name(i).as_str()), expected);
    }
    map.clear();
    assert_eq!(map.get("f0"), None);
    map.insert(name(0), 7);
    assert_eq!(map[0], 7);
    assert_eq!(map["f0"], 7);
}

#[test]
fn a_uuid_is_written_as_the_uuid_crate_writes_it() {
    let every_byte = (0..16u8).map(|i| Uuid::from_bytes(std::array::from_fn(|j| i * 16 + j as u8)));
    let uuids = [
        Uuid::nil(),
        Uuid::max(),
        Uuid::now_v7(),
        Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210),
    ]
    .into_iter()
    .chain(every_byte);

    for uuid in uuids {
        assert_eq!(uuid.to_value(), Value::String(uuid.to_string()));
    }
}
