"""Test doubles of the pipeline side, for tests and benchmarks only (production code never imports this
package): a loopback media server with fault injection (``loopback_server``), tiny random vision captioners
(``tiny_vision_models``) and a tiny chat LM (``tiny_lm``). The tiny models are written in the real models'
on-disk layouts, so the production loaders read them through the same path as real weights."""
