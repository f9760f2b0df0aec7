"""Object detection: boxes from COCO/YOLO/VOC, a single-stage detector on a timm backbone, its numpy decoder
and mAP. `decode` imports numpy only: the model server shares it."""
