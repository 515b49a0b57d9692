"""Training loops (segmentation now; autoencoder, diffusion and adversarial ones later). Needs the
``torch`` extra."""
