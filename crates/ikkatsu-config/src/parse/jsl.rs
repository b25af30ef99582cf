//! The keys of the JSL of Surfin Batch (a Go batch framework) that ikkatsu reads beside its
//! own: an element's own `id`, `reader`/`processor`/`writer` at element level with
//! `chunk: {item-count, commit-interval}`, a decision as `ref` + `properties`, a split as
//! `steps: [NAME, ...]` (elements of the same flow), listener
//! lists per role, `execution-context-promotion: {keys}`, `incrementer: {ref}` and a flow's
//! `transition-rules`. docs/flows.md maps each of them to ikkatsu's own keys.

use super::fault::FAULT_KEYS;
use super::{Fields, Parser};
use crate::model::element::{ElementKind, element_keys};
use crate::model::{
    ChunkDefinition, ComponentDefinition, ComponentSelector, ElementDefinition, FlowDefinition,
    ListenerRole, Located, SplitDefinition,
};
use crate::node::{Node, NodeKind};

/// The element keys of Surfin Batch's shape (the role listener lists come from [`ListenerRole`]).
const SURFIN_ELEMENT_KEYS: &[&str] = &[
    "id",
    "description",
    "reader",
    "processor",
    "writer",
    "ref",
    "properties",
    "steps",
];
/// The parts of a chunk element at element level.
const PARTS: &[&str] = &["reader", "processor", "writer"];
/// `chunk` beside element-level parts: its size, and ikkatsu's own chunk settings.
const SURFIN_CHUNK_KEYS: &[&str] = &["item-count", "commit-interval", "chunk-size", "read-ahead"];
const PROMOTION_KEYS: &[&str] = &["keys"];
const INCREMENTER_KEYS: &[&str] = &["ref"];

/// Every key an element may have, in either shape.
pub(crate) fn all_element_keys() -> Vec<&'static str> {
    let mut keys = element_keys();
    keys.extend(SURFIN_ELEMENT_KEYS);
    keys.extend(ListenerRole::KEYS.iter().map(|(k, _)| *k));
    keys
}

impl Parser<'_> {
    /// The kind of an element written in Surfin Batch's shape: parts at element level (a chunk
    /// step) or `ref` (a decision). `None` when the element is in ikkatsu's shape; `kinds`
    /// are the kind keys it has.
    pub(crate) fn surfin_shape(
        &mut self,
        f: &Fields<'_>,
        kinds: &[&str],
        what: &str,
    ) -> Option<Option<ElementKind>> {
        if f.has("steps") {
            if let Some(other) = kinds
                .iter()
                .copied()
                .chain(PARTS.iter().copied().filter(|k| f.has(k)))
                .chain(f.has("ref").then_some("ref"))
                .next()
            {
                self.error(
                    f.key_position(other),
                    format!("{what} has both `steps` (a split) and `{other}`: give only one kind"),
                );
                return Some(None);
            }
            return Some(self.split_steps(f, what));
        }
        let part = PARTS.iter().copied().find(|k| f.has(k));
        let other = kinds
            .iter()
            .copied()
            .find(|k| *k != "chunk" || part.is_none());
        match (part, f.has("ref")) {
            (None, false) => {
                if f.has("properties") {
                    self.error(
                        f.key_position("properties"),
                        format!("`properties` in {what} belongs to a decision given by `ref`, or to a component"),
                    );
                }
                None
            }
            (Some(part), true) => {
                self.error(
                    f.key_position("ref"),
                    format!("{what} has both `{part}` and `ref`: a chunk step has `reader` and `writer`, a decision `ref`"),
                );
                Some(None)
            }
            (Some(part), false) => {
                if let Some(other) = other {
                    self.error(
                        f.key_position(other),
                        format!("{what} has both `{part}` and `{other}`: give only one kind"),
                    );
                    return Some(None);
                }
                Some(
                    self.surfin_chunk(f, what)
                        .map(|c| ElementKind::Chunk(Box::new(c))),
                )
            }
            (None, true) => {
                if let Some(other) = kinds.first() {
                    self.error(
                        f.key_position("ref"),
                        format!("{what} has both `{other}` and `ref`: a decision given by `ref` has no `{other}`"),
                    );
                    return Some(None);
                }
                let decider = f.get("ref").and_then(|n| self.name(n, "ref", what));
                let properties = self.properties(f, f.node, what);
                Some(decider.zip(properties).map(|(name, properties)| {
                    ElementKind::Decision(ComponentDefinition {
                        position: name.position,
                        selector: ComponentSelector::Ref(name),
                        properties,
                    })
                }))
            }
        }
    }

    /// A split given as `steps: [NAME, ...]`, names of elements of the same flow: one flow
    /// per name, to be filled by [`Parser::gather_split_steps`] (its elements are empty
    /// until then).
    fn split_steps(&mut self, f: &Fields<'_>, what: &str) -> Option<ElementKind> {
        let node = f.get("steps")?;
        let items = self.list(node, "steps", what)?;
        if items.is_empty() {
            self.error(
                node.position(),
                format!("`steps` of {what} is empty; name the steps the split runs"),
            );
            return None;
        }
        let mut flows = Vec::new();
        for item in items {
            let start = self.name(item, "steps", what)?;
            flows.push(FlowDefinition {
                start,
                elements: Vec::new(),
            });
        }
        Some(ElementKind::Split(SplitDefinition { flows }))
    }

    /// Moves each element a split names in `steps` out of `flow` into the split's flow of
    /// its name: it runs only there.
    pub(crate) fn gather_split_steps(&mut self, flow: &mut FlowDefinition) {
        let mut wanted: Vec<(usize, usize, Located<String>, String)> = Vec::new();
        for (e, element) in flow.elements.iter().enumerate() {
            if let ElementKind::Split(split) = &element.kind {
                for (i, inner) in split.flows.iter().enumerate() {
                    if inner.elements.is_empty() {
                        wanted.push((e, i, inner.start.clone(), element.name.value.clone()));
                    }
                }
            }
        }
        let mut moved: Vec<(usize, usize, ElementDefinition)> = Vec::new();
        let mut taken: Vec<(String, String)> = Vec::new();
        for (e, i, name, split) in wanted {
            if let Some((_, by)) = taken.iter().find(|(n, _)| *n == name.value) {
                self.error(
                    name.position,
                    format!("step `{}` of split `{split}` already runs in split `{by}`: a step runs in one split", name.value),
                );
                continue;
            }
            let Some(found) = flow.elements.iter().find(|x| x.name.value == name.value) else {
                let mut names: Vec<&str> = flow
                    .elements
                    .iter()
                    .map(|x| x.name.value.as_str())
                    .collect();
                names.sort_unstable();
                self.error(
                    name.position,
                    format!(
                        "step `{}` of split `{split}` does not exist (elements: {})",
                        name.value,
                        names.join(", ")
                    ),
                );
                continue;
            };
            if !found.transitions.is_empty() || found.next.is_some() {
                self.error(
                    found.name.position,
                    format!(
                        "step `{}` runs in split `{split}`, which goes on by its own transitions: remove the step's `transitions` and `next`",
                        name.value
                    ),
                );
                continue;
            }
            taken.push((name.value.clone(), split.clone()));
            moved.push((e, i, found.clone()));
        }
        for (e, i, element) in moved {
            if let ElementKind::Split(split) = &mut flow.elements[e].kind {
                split.flows[i].elements.push(element);
            }
        }
        flow.elements
            .retain(|x| !taken.iter().any(|(n, _)| *n == x.name.value));
    }

    /// Errors for splits given as `steps: [NAME, ...]` in a list of steps, where they have
    /// no elements to name.
    pub(crate) fn refuse_split_steps(&mut self, elements: &[ElementDefinition]) {
        for element in elements {
            if let ElementKind::Split(split) = &element.kind
                && split.flows.iter().any(|f| f.elements.is_empty())
            {
                self.error(
                    element.name.position,
                    format!(
                        "step `{}`: a split given as `steps: [NAME, ...]` names elements of a `flow`'s `elements`; in a list of steps, write `split: {{flows: [...]}}`",
                        element.name.value
                    ),
                );
            }
        }
    }

    /// A chunk step whose reader, processor and writer are at element level, sized by
    /// `chunk: {item-count, commit-interval}`.
    fn surfin_chunk(&mut self, f: &Fields<'_>, step: &str) -> Option<ChunkDefinition> {
        let reader = self
            .required(f, "reader", step)
            .and_then(|n| self.component(n, &format!("the reader of {step}")));
        let processor = f
            .get("processor")
            .and_then(|n| self.component(n, &format!("the processor of {step}")));
        let writer = self
            .required(f, "writer", step)
            .and_then(|n| self.component(n, &format!("the writer of {step}")));
        let what = format!("the chunk of {step}");
        let mut definition = ChunkDefinition {
            reader: reader?,
            processor,
            writer: writer?,
            chunk_size: None,
            skip: None,
            retry: None,
            no_rollback: Vec::new(),
            dead_letter: None,
            read_ahead: None,
        };
        let Some(node) = f.get("chunk") else {
            return Some(definition);
        };
        if node.is_null() {
            return Some(definition);
        }
        let keys: Vec<&str> = SURFIN_CHUNK_KEYS
            .iter()
            .chain(FAULT_KEYS)
            .copied()
            .collect();
        let cf = self.map(node, &what, &keys)?;
        let sizes: Vec<&str> = ["item-count", "chunk-size"]
            .into_iter()
            .filter(|k| cf.has(k))
            .collect();
        // `item-count` (or `chunk-size`) is the chunk's size; `commit-interval` alone is too.
        // Beside it, `commit-interval` changes nothing: a chunk is committed as one.
        let size_key = match sizes.as_slice() {
            [] if cf.has("commit-interval") => Some("commit-interval"),
            [] => None,
            [key] => Some(*key),
            [_, second, ..] => {
                self.error(
                    cf.key_position(second),
                    format!("`chunk-size` is an alias of `item-count` in {what}: give only one"),
                );
                return None;
            }
        };
        if let Some(key) = size_key
            && let Some(n) = cf.get(key)
        {
            definition.chunk_size = self
                .count(n, key, &what, 1)
                .map(|v| Located::new(v, n.position()));
            definition.chunk_size.as_ref()?;
        }
        if size_key != Some("commit-interval")
            && let Some(n) = cf.get("commit-interval")
        {
            self.count(n, "commit-interval", &what, 1)?;
        }
        definition.read_ahead = cf
            .get("read-ahead")
            .and_then(|n| self.boolean(n, "read-ahead", &what));
        let faults = self.faults(&cf, step, &what);
        definition.skip = faults.skip;
        definition.retry = faults.retry;
        definition.no_rollback = faults.no_rollback;
        definition.dead_letter = faults.dead_letter;
        Some(definition)
    }

    /// An element's own `id`, which must be its key.
    pub(crate) fn check_own_id(&mut self, f: &Fields<'_>, name: &Located<String>, what: &str) {
        let Some(id) = f.get("id").and_then(|n| self.name(n, "id", what)) else {
            return;
        };
        if id.value != name.value {
            self.error(
                id.position,
                format!(
                    "`id: {}` in {what} differs from its key `{}`: an element's `id` must be its key (or leave `id` out)",
                    id.value, name.value
                ),
            );
        }
    }

    /// The listener lists of one role (`item-read-listeners`, ...): `[{ref: NAME}]`.
    pub(crate) fn role_listeners(
        &mut self,
        f: &Fields<'_>,
        what: &str,
    ) -> Vec<(ListenerRole, ComponentDefinition)> {
        let mut out = Vec::new();
        for (key, role) in ListenerRole::KEYS {
            let Some(node) = f.get(key) else { continue };
            let Some(items) = self.list(node, key, what) else {
                continue;
            };
            let of = format!("{} of {what}", role.describe());
            for item in items {
                let Some(component) = self.component(item, &format!("a {of}")) else {
                    continue;
                };
                if let ComponentSelector::Type(t) = &component.selector {
                    self.error(
                        t.position,
                        format!("`{key}` of {what} takes `{{ref: NAME}}` (a listener registered from Rust); listener types go in `listeners`"),
                    );
                    continue;
                }
                out.push((*role, component));
            }
        }
        out
    }

    /// `execution-context-promotion`: a list of keys, or `{keys: [...]}`.
    pub(crate) fn promotion(&mut self, node: &Node, what: &str) -> Vec<String> {
        let key = "execution-context-promotion";
        let list = if node.is_map() {
            let Some(pf) = self.map(node, &format!("`{key}` of {what}"), PROMOTION_KEYS) else {
                return Vec::new();
            };
            match pf.get("keys") {
                Some(keys) => keys,
                None => return Vec::new(),
            }
        } else {
            node
        };
        self.list(list, key, what)
            .unwrap_or_default()
            .iter()
            .filter_map(|k| self.name(k, key, what))
            .map(|k| k.value)
            .collect()
    }

    /// `incrementer: NAME` or `incrementer: {ref: NAME}`.
    pub(crate) fn incrementer(&mut self, node: &Node, what: &str) -> Option<Located<String>> {
        if !node.is_map() {
            return self.name(node, "incrementer", what);
        }
        let inner = format!("the incrementer of {what}");
        let f = self.map(node, &inner, INCREMENTER_KEYS)?;
        self.required(&f, "ref", &inner)
            .and_then(|n| self.name(n, "ref", &inner))
    }

    /// A flow's `transition-rules: [{from, on, to | end | fail | stop}]`: each is added to
    /// the transitions of its `from` element, after the element's own.
    pub(crate) fn transition_rules(&mut self, node: &Node, flow: &mut FlowDefinition, what: &str) {
        let Some(items) = self.list(node, "transition-rules", what) else {
            return;
        };
        let mut allowed = super::transitions::TRANSITION_KEYS.to_vec();
        allowed.push("from");
        for (i, item) in items.iter().enumerate() {
            let rule = format!("transition rule #{} of {what}", i + 1);
            let Some(f) = self.map(item, &rule, &allowed) else {
                continue;
            };
            let Some(from) = self
                .required(&f, "from", &rule)
                .and_then(|n| self.name(n, "from", &rule))
            else {
                continue;
            };
            let entries = f
                .entries
                .iter()
                .filter(|(k, _)| k.name != "from")
                .cloned()
                .collect();
            let one = Node::new(
                item.position(),
                NodeKind::Seq(vec![Node::new(item.position(), NodeKind::Map(entries))]),
            );
            let transitions = self.transitions(&one, &rule);
            match flow
                .elements
                .iter_mut()
                .find(|e| e.name.value == from.value)
            {
                Some(element) => element.transitions.extend(transitions),
                None => {
                    let mut names: Vec<&str> = flow
                        .elements
                        .iter()
                        .map(|e| e.name.value.as_str())
                        .collect();
                    names.sort_unstable();
                    self.error(
                        from.position,
                        format!(
                            "`from` of {rule}: element `{}` does not exist (elements: {})",
                            from.value,
                            names.join(", ")
                        ),
                    );
                }
            }
        }
    }
}
