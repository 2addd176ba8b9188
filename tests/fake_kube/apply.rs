//! An approximation of server-side apply: field ownership per field manager, merging by the
//! schema's list types (`x-kubernetes-list-type: map` lists merge by key, `set` lists by value,
//! other lists are atomic), conflicts between managers, and removal of the fields a manager
//! stops applying.
//!
//! Fields are tracked as paths down to leaves (scalars, atomic lists, empty maps, set members)
//! plus one path per map-list item. `apiVersion`, `kind` and the system fields of `metadata` are
//! never owned; `metadata.labels`, `annotations`, `finalizers` (a set) and `ownerReferences` (a
//! map list keyed by `uid`) are.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::LazyLock,
};

use serde_json::{Map, Value, json};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Element {
    /// A field of an object or a key of a map.
    Field(String),
    /// An item of a map list, by the JSON of its key fields.
    Key(String),
    /// A member of a set list, by its JSON.
    Value(String),
}

pub type FieldPath = Vec<Element>;
pub type FieldSet = BTreeSet<FieldPath>;

/// Who manages which fields: one entry per manager, operation and subresource, as in
/// `metadata.managedFields`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryKey {
    pub manager: String,
    pub apply: bool,
    pub subresource: String,
}

pub type Managers = BTreeMap<EntryKey, FieldSet>;

/// The parts of `metadata` that are owned, with their list types.
static METADATA_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "type": "object",
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ownerReferences": {
                "type": "array",
                "items": {"type": "object"},
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["uid"],
            },
        },
    })
});

const OWNED_METADATA: [&str; 4] = ["labels", "annotations", "finalizers", "ownerReferences"];

/// A node of an OpenAPI schema; `None` where the schema says nothing (built-in kinds): objects
/// are then merged field by field and lists are atomic.
#[derive(Clone, Copy, Debug)]
pub struct Schema<'a> {
    node: Option<&'a Value>,
}

enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

impl<'a> Schema<'a> {
    pub fn new(node: Option<&'a Value>) -> Self {
        Self { node }
    }

    fn child(self, key: &str) -> Self {
        let node = self.node.and_then(|n| {
            n.get("properties")
                .and_then(|p| p.get(key))
                .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
        });
        Self { node }
    }

    fn items(self) -> Self {
        Self { node: self.node.and_then(|n| n.get("items")) }
    }

    fn list_type(self) -> ListType {
        let node = self.node;
        match node.and_then(|n| n.get("x-kubernetes-list-type")).and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                node.and_then(|n| n.get("x-kubernetes-list-map-keys"))
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }

    fn atomic_map(self) -> bool {
        self.node.and_then(|n| n.get("x-kubernetes-map-type")).and_then(Value::as_str) == Some("atomic")
    }
}

fn metadata_schema() -> Schema<'static> {
    Schema { node: Some(&METADATA_SCHEMA) }
}

/// The JSON of an item's key fields.
fn item_key(item: &Value, keys: &[String]) -> String {
    let mut map = Map::new();
    for key in keys {
        map.insert(key.clone(), item.get(key).cloned().unwrap_or(Value::Null));
    }
    Value::Object(map).to_string()
}

fn collect<'v>(value: &'v Value, schema: Schema, path: &mut FieldPath, out: &mut BTreeMap<FieldPath, &'v Value>) {
    match value {
        Value::Object(map) if !schema.atomic_map() && !map.is_empty() => {
            for (key, child) in map {
                path.push(Element::Field(key.clone()));
                collect(child, schema.child(key), path, out);
                path.pop();
            }
        }
        Value::Array(items) => match schema.list_type() {
            ListType::Map(keys) => {
                for item in items {
                    path.push(Element::Key(item_key(item, &keys)));
                    out.insert(path.clone(), item);
                    if let Value::Object(map) = item {
                        for (key, child) in map {
                            path.push(Element::Field(key.clone()));
                            collect(child, schema.items().child(key), path, out);
                            path.pop();
                        }
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    path.push(Element::Value(item.to_string()));
                    out.insert(path.clone(), item);
                    path.pop();
                }
            }
            ListType::Atomic => {
                out.insert(path.clone(), value);
            }
        },
        _ => {
            out.insert(path.clone(), value);
        }
    }
}

/// Every owned field of an object with its value. `schema` is the root schema.
pub fn owned_fields<'v>(object: &'v Value, schema: Schema) -> BTreeMap<FieldPath, &'v Value> {
    let mut out = BTreeMap::new();
    let Value::Object(root) = object else { return out };
    let mut path = Vec::new();
    for (key, value) in root {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                for field in OWNED_METADATA {
                    if let Some(child) = value.get(field) {
                        path.push(Element::Field("metadata".into()));
                        path.push(Element::Field(field.into()));
                        collect(child, metadata_schema().child(field), &mut path, &mut out);
                        path.clear();
                    }
                }
            }
            _ => {
                path.push(Element::Field(key.clone()));
                collect(value, schema.child(key), &mut path, &mut out);
                path.clear();
            }
        }
    }
    out
}

/// `.spec.webhooks[name="a"].url`, as conflict messages show a path.
pub fn display(path: &[Element]) -> String {
    let mut out = String::new();
    for element in path {
        match element {
            Element::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            Element::Key(key) => {
                let parts: Vec<String> = match serde_json::from_str::<Value>(key) {
                    Ok(Value::Object(map)) => map.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![key.clone()],
                };
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Element::Value(value) => out.push_str(&format!("[{value}]")),
        }
    }
    out
}

fn merge(live: &mut Value, applied: &Value, schema: Schema) {
    match applied {
        Value::Object(applied_map) if !schema.atomic_map() => {
            if !live.is_object() {
                *live = Value::Object(Map::new());
            }
            if let Value::Object(live_map) = live {
                for (key, value) in applied_map {
                    if value.is_null() {
                        live_map.remove(key);
                    } else if let Some(existing) = live_map.get_mut(key) {
                        merge(existing, value, schema.child(key));
                    } else {
                        live_map.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        Value::Array(applied_items) => match (schema.list_type(), live) {
            (ListType::Map(keys), Value::Array(live_items)) => {
                for item in applied_items {
                    let key = item_key(item, &keys);
                    match live_items.iter_mut().find(|existing| item_key(existing, &keys) == key) {
                        Some(existing) => merge(existing, item, schema.items()),
                        None => live_items.push(item.clone()),
                    }
                }
            }
            (ListType::Set, Value::Array(live_items)) => {
                for item in applied_items {
                    if !live_items.contains(item) {
                        live_items.push(item.clone());
                    }
                }
            }
            (_, live) => *live = applied.clone(),
        },
        _ => *live = applied.clone(),
    }
}

/// Merges the owned parts of `applied` into `live` (the root object).
fn merge_root(live: &mut Value, applied: &Value, schema: Schema) {
    let (Value::Object(live_map), Value::Object(applied_map)) = (live, applied) else { return };
    for (key, value) in applied_map {
        match key.as_str() {
            "apiVersion" | "kind" => {}
            "metadata" => {
                let metadata = live_map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
                for field in OWNED_METADATA {
                    if let Some(child) = value.get(field) {
                        if child.is_null() {
                            if let Value::Object(m) = metadata {
                                m.remove(field);
                            }
                        } else if let Value::Object(m) = metadata {
                            match m.get_mut(field) {
                                Some(existing) => merge(existing, child, metadata_schema().child(field)),
                                None => {
                                    m.insert(field.to_owned(), child.clone());
                                }
                            }
                        }
                    }
                }
            }
            _ if value.is_null() => {
                live_map.remove(key);
            }
            _ => match live_map.get_mut(key) {
                Some(existing) => merge(existing, value, schema.child(key)),
                None => {
                    live_map.insert(key.clone(), value.clone());
                }
            },
        }
    }
}

/// Removes the field at `path` from `root`, if present.
fn remove_path(root: &mut Value, path: &[Element], schema: Schema) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut node = root;
    let mut schema = schema;
    let mut at_root = true;
    for element in parents {
        let next_schema = match element {
            Element::Field(name) if at_root && name == "metadata" => metadata_schema(),
            Element::Field(name) => schema.child(name),
            Element::Key(_) | Element::Value(_) => schema.items(),
        };
        let next = match (element, node) {
            (Element::Field(name), Value::Object(map)) => map.get_mut(name),
            (Element::Key(key), Value::Array(items)) => {
                let keys = match schema.list_type() {
                    ListType::Map(keys) => keys,
                    _ => return,
                };
                items.iter_mut().find(|item| item_key(item, &keys) == *key)
            }
            _ => None,
        };
        let Some(next) = next else { return };
        node = next;
        schema = next_schema;
        at_root = false;
    }
    match (last, node) {
        (Element::Field(name), Value::Object(map)) => {
            map.remove(name);
        }
        (Element::Key(key), Value::Array(items)) => {
            if let ListType::Map(keys) = schema.list_type() {
                items.retain(|item| item_key(item, &keys) != *key);
            }
        }
        (Element::Value(value), Value::Array(items)) => {
            let value: Value = serde_json::from_str(value).unwrap_or(Value::Null);
            items.retain(|item| *item != value);
        }
        _ => {}
    }
}

/// The value at a path of field names and map-list keys, if present.
fn value_at<'v>(root: &'v Value, path: &[Element]) -> Option<&'v Value> {
    let mut node = root;
    for element in path {
        node = match (element, node) {
            (Element::Field(name), Value::Object(map)) => map.get(name)?,
            _ => return None,
        };
    }
    Some(node)
}

fn is_item(path: &[Element]) -> bool {
    matches!(path.last(), Some(Element::Key(_)))
}

/// Whether `set` holds `path` or anything below it.
fn covers(set: &FieldSet, path: &FieldPath) -> bool {
    set.range(path.clone()..).next().is_some_and(|p| p.starts_with(path))
}

/// What an apply request does to an object.
pub struct Applied {
    pub object: Value,
    pub managers: Managers,
}

/// Applies `applied` (already reduced to what the request may change: no `status` on the main
/// resource, only `status` on the status subresource) for `entry` onto `live`.
///
/// Returns the conflicts (manager, field) when other managers own fields that `applied` sets
/// to different values and `force` is off.
pub fn apply(
    live: &Value,
    applied: &Value,
    schema: Schema,
    managers: &Managers,
    entry: &EntryKey,
    force: bool,
) -> Result<Applied, Vec<(String, String)>> {
    let applied_fields = owned_fields(applied, schema);
    let live_fields = owned_fields(live, schema);
    let mut conflicts = Vec::new();
    let mut taken: BTreeMap<EntryKey, Vec<FieldPath>> = BTreeMap::new();
    for (other, fields) in managers.iter().filter(|(key, _)| key.manager != entry.manager) {
        for (path, value) in applied_fields.iter().filter(|(path, _)| !is_item(path)) {
            if fields.contains(path) && live_fields.get(path).is_some_and(|live| live != value) {
                conflicts.push((other.manager.clone(), display(path)));
                taken.entry(other.clone()).or_default().push(path.clone());
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut object = live.clone();
    merge_root(&mut object, applied, schema);

    let owned: FieldSet = applied_fields.keys().cloned().collect();
    let previous = managers.get(entry).cloned().unwrap_or_default();
    let mut managers = managers.clone();
    for (key, paths) in taken {
        if let Some(fields) = managers.get_mut(&key) {
            paths.iter().for_each(|p| {
                fields.remove(p);
            });
        }
    }
    managers.insert(entry.clone(), owned.clone());
    managers.retain(|_, fields| !fields.is_empty());

    // Fields this manager applied before and not now go, unless someone else still owns them.
    // Parents come first: a removed list item takes its fields with it, and the key fields of
    // an item that stays are never removed.
    let mut removed: Vec<&FieldPath> = Vec::new();
    for path in previous.difference(&owned) {
        if removed.iter().any(|gone| path.starts_with(gone)) || is_key_field(path) {
            continue;
        }
        // An empty map applied before is owned as a leaf; filled now, it is owned field by field.
        if owned.iter().any(|field| field.len() > path.len() && field.starts_with(path)) {
            continue;
        }
        let kept = managers.iter().any(|(key, fields)| key != entry && covers(fields, path));
        if !kept {
            remove_path(&mut object, path, schema);
            removed.push(path);
        }
    }
    // A map left empty by the removals, that nobody owns anything under, goes too (a real
    // server tracks the parent as owned and removes it with its last field).
    for path in &removed {
        for depth in (1..path.len()).rev() {
            let parent = &path[..depth];
            if !matches!(parent.last(), Some(Element::Field(_))) {
                break;
            }
            let owned_below = managers.values().any(|fields| fields.iter().any(|f| f.starts_with(parent)));
            if owned_below || !value_at(&object, parent).is_some_and(|v| v.as_object().is_some_and(|m| m.is_empty())) {
                break;
            }
            remove_path(&mut object, parent, schema);
        }
    }
    Ok(Applied { object, managers })
}

/// Whether `path` is a key field of a map-list item (`…[type="Ready"].type`).
fn is_key_field(path: &[Element]) -> bool {
    match path {
        [.., Element::Key(key), Element::Field(field)] => {
            serde_json::from_str::<Value>(key).is_ok_and(|key| key.get(field).is_some())
        }
        _ => false,
    }
}

/// Records an update (create, replace, merge or JSON patch) by `entry`: it now owns what it
/// changed, and nobody owns what it removed.
pub fn record_update(managers: &mut Managers, entry: &EntryKey, old: &Value, new: &Value, schema: Schema) {
    let old_fields = owned_fields(old, schema);
    let new_fields = owned_fields(new, schema);
    let changed: Vec<&FieldPath> =
        new_fields.iter().filter(|(path, value)| old_fields.get(*path) != Some(*value)).map(|(path, _)| path).collect();
    let removed: Vec<&FieldPath> = old_fields.keys().filter(|path| !new_fields.contains_key(*path)).collect();
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    for fields in managers.values_mut() {
        for path in changed.iter().chain(&removed) {
            fields.remove(*path);
        }
    }
    let fields = managers.entry(entry.clone()).or_default();
    fields.extend(changed.into_iter().cloned());
    managers.retain(|_, fields| !fields.is_empty());
}

/// `metadata.managedFields`-like summary for tests: manager → owned field paths.
pub fn summary(managers: &Managers) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, fields) in managers {
        let name = format!(
            "{} ({}{})",
            key.manager,
            if key.apply { "Apply" } else { "Update" },
            if key.subresource.is_empty() { String::new() } else { format!(", {}", key.subresource) }
        );
        out.entry(name).or_default().extend(fields.iter().map(|p| display(p)));
    }
    out
}
