"""napari-gleason: review multi-expert Gleason annotations and train the noisy-label model."""
