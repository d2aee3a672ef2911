//! Recipe to image: plans layers, builds them into a store, assembles the image and writes outputs
