"""Numbers shared by the engine, the app and the browser code, named once.

The app passes the ones the browser needs (slider range and step) to its components as data,
so the JavaScript never repeats them.
"""

from __future__ import annotations

# A latent dimension d is "collapsed" when its average KL(q(z_d|x) || p(z_d)) over the data is
# below this many nats: it carries (almost) no information about x.
KL_COLLAPSED_NATS = 0.01
# ... or "inactive" when Var_x E_q[z_d] is at or below this (Burda et al. 2016, "active units").
ACTIVE_VAR_THRESHOLD = 0.01

# The explorer's sliders cover z_d in [-SLIDER_RANGE, SLIDER_RANGE]: the prior N(0, 1) puts
# 99.7 % of its mass there.
SLIDER_RANGE = 3.0
SLIDER_STEP = 0.01

# Decoder outputs (samples x examples x input pixels) computed in one pass by the estimators
# that loop over chunks: 3e7 float32 is ~120 MB, which holds on a 2-core laptop and per user on
# a served app.
FLOATS_PER_PASS = 30_000_000
