//! Which sinks a pipeline's outputs may reach: only those its config
//! declares. A plugin names a route; the route is looked up among the
//! pipeline's `routes` keys and the names of the sinks the pipeline names
//! (`default_route`, `dead_letter`, `routes` targets), never among every
//! sink of the config, so a plugin cannot write into another pipeline's
//! sinks. An output whose route matches none is dead-lettered by the
//! writer.

use std::collections::BTreeMap;

use super::NamedSink;

/// A pipeline names a sink the config does not define.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no sink named `{0}`")]
pub struct UnknownSink(pub String);

/// The sink names a pipeline declares (`[pipelines.NAME]`), before they
/// are resolved against the connected sinks.
#[derive(Debug, Clone, Copy)]
pub struct RouteNames<'a> {
    /// Sink for outputs that name no route.
    pub default_route: &'a str,
    /// Dead-letter sink, if any.
    pub dead_letter: Option<&'a str>,
    /// Extra route names mapped to sink names.
    pub routes: &'a BTreeMap<String, String>,
}

/// The sinks a pipeline writes to, resolved from its config.
#[derive(Debug, Clone)]
pub struct DeclaredRoutes {
    /// Sink for outputs without a route.
    pub default_route: NamedSink,
    /// Route name -> sink: the pipeline's `routes` keys and the names of
    /// the sinks it names.
    pub routes: BTreeMap<String, NamedSink>,
    /// Dead-letter sink.
    pub dead_letter: Option<NamedSink>,
}

impl DeclaredRoutes {
    /// Resolve `pipeline`'s sink names against the connected `sinks`.
    pub fn resolve(
        pipeline: RouteNames<'_>,
        sinks: &BTreeMap<String, NamedSink>,
    ) -> Result<DeclaredRoutes, UnknownSink> {
        let sink = |name: &str| {
            sinks
                .get(name)
                .cloned()
                .ok_or_else(|| UnknownSink(name.to_owned()))
        };
        let default_route = sink(pipeline.default_route)?;
        let dead_letter = pipeline.dead_letter.map(sink).transpose()?;
        let mut routes = BTreeMap::new();
        // Sink names first, so an explicit route key of the same name wins.
        for named in std::iter::once(&default_route).chain(dead_letter.as_ref()) {
            routes.insert(named.name.clone(), named.clone());
        }
        for target in pipeline.routes.values() {
            routes.insert(target.clone(), sink(target)?);
        }
        for (route, target) in pipeline.routes {
            routes.insert(route.clone(), sink(target)?);
        }
        Ok(DeclaredRoutes {
            default_route,
            routes,
            dead_letter,
        })
    }
}
