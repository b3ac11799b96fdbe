//! Topic exchange routing: a trie over dot-separated words, with `*` (exactly one word) and
//! `#` (zero or more words) as RabbitMQ defines them.
//!
//! Matching walks the trie once per routing key; no allocation unless the key has more than
//! sixteen words.

use smallvec::SmallVec;
use std::collections::HashMap;

/// Splits a topic key into words. The empty key has no words (as in RabbitMQ), so a binding
/// `#` matches it and a binding `*` does not; `a..b` has an empty middle word.
pub fn split_words(key: &[u8]) -> SmallVec<[&[u8]; 16]> {
    let mut words = SmallVec::new();
    if key.is_empty() {
        return words;
    }
    for w in key.split(|b| *b == b'.') {
        words.push(w);
    }
    words
}

/// A trie of binding patterns; `T` is what a complete pattern leads to (the bindings).
#[derive(Debug)]
pub struct TopicTrie<T> {
    root: Node<T>,
}

#[derive(Debug)]
struct Node<T> {
    words: HashMap<Box<[u8]>, Node<T>>,
    star: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    values: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            words: HashMap::new(),
            star: None,
            hash: None,
            values: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.words.is_empty()
            && self.star.is_none()
            && self.hash.is_none()
    }
}

impl<T> Default for TopicTrie<T> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
        }
    }
}

impl<T: PartialEq> TopicTrie<T> {
    pub fn insert(&mut self, pattern: &[u8], value: T) -> bool {
        let mut node = &mut self.root;
        for w in split_words(pattern) {
            node = match w {
                b"*" => node.star.get_or_insert_with(Default::default),
                b"#" => node.hash.get_or_insert_with(Default::default),
                _ => node.words.entry(w.into()).or_default(),
            };
        }
        if node.values.contains(&value) {
            return false;
        }
        node.values.push(value);
        true
    }

    /// Removes the first value equal to `value` under `pattern`; prunes empty branches.
    pub fn remove(&mut self, pattern: &[u8], value: &T) -> bool {
        let words = split_words(pattern);
        remove_at(&mut self.root, &words, value)
    }

    /// Removes every value for which `pred` is true, anywhere in the trie.
    pub fn retain(&mut self, pred: &mut impl FnMut(&T) -> bool) {
        retain_node(&mut self.root, pred);
    }

    /// Calls `f` for every value whose pattern matches `key`. A value can be reported more than
    /// once when several paths match (`#.#`); callers de-duplicate destinations anyway.
    pub fn matches(&self, key: &[u8], f: &mut impl FnMut(&T)) {
        let words = split_words(key);
        match_node(&self.root, &words, f);
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    pub fn for_each(&self, f: &mut impl FnMut(&T)) {
        each_node(&self.root, f);
    }
}

fn remove_at<T: PartialEq>(node: &mut Node<T>, words: &[&[u8]], value: &T) -> bool {
    let Some((first, rest)) = words.split_first() else {
        if let Some(pos) = node.values.iter().position(|v| v == value) {
            node.values.remove(pos);
            return true;
        }
        return false;
    };
    let child: Option<&mut Node<T>> = match *first {
        b"*" => node.star.as_deref_mut(),
        b"#" => node.hash.as_deref_mut(),
        w => node.words.get_mut(w),
    };
    let Some(child) = child else { return false };
    let removed = remove_at(child, rest, value);
    if removed && child.is_empty() {
        match *first {
            b"*" => node.star = None,
            b"#" => node.hash = None,
            w => {
                node.words.remove(w);
            }
        }
    }
    removed
}

fn retain_node<T>(node: &mut Node<T>, pred: &mut impl FnMut(&T) -> bool) {
    node.values.retain(|v| pred(v));
    node.words.retain(|_, child| {
        retain_node(child, pred);
        !child.is_empty()
    });
    for slot in [&mut node.star, &mut node.hash] {
        if let Some(child) = slot {
            retain_node(child, pred);
            if child.is_empty() {
                *slot = None;
            }
        }
    }
}

fn each_node<T>(node: &Node<T>, f: &mut impl FnMut(&T)) {
    node.values.iter().for_each(&mut *f);
    for child in node.words.values() {
        each_node(child, f);
    }
    if let Some(c) = &node.star {
        each_node(c, f);
    }
    if let Some(c) = &node.hash {
        each_node(c, f);
    }
}

fn match_node<T>(node: &Node<T>, words: &[&[u8]], f: &mut impl FnMut(&T)) {
    if let Some(hash) = &node.hash {
        // `#` swallows zero or more words: try every split point.
        for skip in 0..=words.len() {
            match_node(hash, &words[skip..], f);
        }
    }
    let Some((first, rest)) = words.split_first() else {
        node.values.iter().for_each(f);
        return;
    };
    if let Some(child) = node.words.get(*first) {
        match_node(child, rest, f);
    }
    if let Some(star) = &node.star {
        match_node(star, rest, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(patterns: &[&str], key: &str) -> Vec<usize> {
        let mut t = TopicTrie::default();
        for (i, p) in patterns.iter().enumerate() {
            t.insert(p.as_bytes(), i);
        }
        let mut out = Vec::new();
        t.matches(key.as_bytes(), &mut |v: &usize| out.push(*v));
        out.sort();
        out.dedup();
        out
    }

    #[test]
    fn rabbitmq_topic_rules() {
        let p = [
            "a.b.c", "a.*.c", "a.#", "#", "*", "a.#.c", "#.c", "*.*", "", "a..c", "#.#", "a.*.#",
        ];
        assert_eq!(hits(&p, "a.b.c"), vec![0, 1, 2, 3, 5, 6, 10, 11]);
        assert_eq!(hits(&p, ""), vec![3, 8, 10]);
        assert_eq!(hits(&p, "a"), vec![2, 3, 4, 10]);
        assert_eq!(hits(&p, "a.c"), vec![2, 3, 5, 6, 7, 10, 11]);
        assert_eq!(hits(&p, "a..c"), vec![1, 2, 3, 5, 6, 9, 10, 11]);
        assert_eq!(hits(&p, "x.y.z.c"), vec![3, 6, 10]);
        assert_eq!(hits(&p, "a.x.y.c"), vec![2, 3, 5, 6, 10, 11]);
    }

    #[test]
    fn remove_prunes_and_retain_filters() {
        let mut t = TopicTrie::default();
        t.insert(b"a.*.c", 1);
        t.insert(b"a.#", 2);
        assert!(!t.insert(b"a.#", 2));
        assert!(t.remove(b"a.*.c", &1));
        assert!(!t.remove(b"a.*.c", &1));
        t.retain(&mut |v| *v != 2);
        assert!(t.is_empty());
    }
}
