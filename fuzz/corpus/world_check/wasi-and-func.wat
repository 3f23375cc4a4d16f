(component (import "wasi:cli/stdout@0.2.6" (instance)) (import "wasi:filesystem/types@0.2.6" (instance)) (import "f" (func)))
