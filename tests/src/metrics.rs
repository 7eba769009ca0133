//! Reading Prometheus / OpenMetrics text, as `/metrics` serves it.

use std::{fmt::Debug, str::FromStr};

/// The value of sample `name` (a metric name, with its labels if it has any) in `text`. Panics
/// if there is no such sample or its value does not parse.
pub fn sample<T: FromStr<Err: Debug>>(text: &str, name: &str) -> T {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} is not in the metrics:\n{text}"))
        .parse()
        .unwrap_or_else(|error| panic!("{name}: {error:?}"))
}
