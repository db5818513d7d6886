"""Everything that talks to Open WebUI: the HTTP client and the release boundaries
(``client``), the message tree (``tree``, the only module that edits ``history``),
the turn flows per release (``flows``), following an answer (``live`` events,
``follow``), and what admins see besides the turn (``filing``, ``organise``,
``ratings``)."""
