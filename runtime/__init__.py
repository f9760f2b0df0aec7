"""What a shipped model needs at run time, torch-free: image and box decoding, the bundle's layout, the served
OOD scores and the artifact that answers requests. Both the pipeline (vision, stages) and the model server
(serving) stand on it, so neither imports the other."""
