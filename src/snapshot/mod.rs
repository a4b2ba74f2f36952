//! What `/metrics` serves, apart from how it is served (`serve`) and when
//! targets are scraped (`scrape`): the text sink a scrape renders its kept
//! samples into ([`Rendered`]), every target's latest result ([`Latest`]),
//! their merge into one body valid in text 0.0.4 and OpenMetrics however
//! the targets disagree ([`merge`]), with the external labels and relay's
//! own metrics the config asks for ([`view`]), and the encodings of the
//! served body ([`Snapshot`]: text, OpenMetrics, gzip).
//!
//! Below `scrape` and above `exposition` in the module map: nothing here
//! knows of the server, the scrape loop or `run`.

mod body;
mod created;
pub mod escape;
pub mod exemplars;
mod latest;
pub mod merge;
mod native;
mod protobuf;
mod sink;
mod text;
pub mod view;

pub use body::{Asked, Snapshot};
pub use exemplars::{Exemplars, LineExemplar};
pub use latest::{Latest, OwnMetrics};
pub use native::{NativeSeries, Natives};
pub use sink::{Counts, FamilyBlock, Rendered, TextSink};
pub use view::View;
