(component (import "airlock:verbs/log@0.2.0" (instance)) (import "airlock:verbs/shell@0.1.0" (instance)) (import "other:pkg/x" (instance)))
