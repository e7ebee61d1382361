"""Data: recipe features, the prepared dataset on disk, and the batches fed to the devices."""
