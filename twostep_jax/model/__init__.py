"""The networks: custom ops, conv-BN blocks and backbones, pooling heads, the assembled model."""
