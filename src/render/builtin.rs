//! The default templates and workflow, built into the binary so pake works
//! without a scaffolded project and `pake init` can write them out.

/// (file name under templates/k8s/, contents)
pub const K8S: &[(&str, &str)] = &[
    (
        "namespace.yaml",
        include_str!("../../templates/k8s/namespace.yaml"),
    ),
    ("rbac.yaml", include_str!("../../templates/k8s/rbac.yaml")),
    (
        "network-policies.yaml",
        include_str!("../../templates/k8s/network-policies.yaml"),
    ),
    (
        "deployment.yaml",
        include_str!("../../templates/k8s/deployment.yaml"),
    ),
    (
        "service.yaml",
        include_str!("../../templates/k8s/service.yaml"),
    ),
    ("pdb.yaml", include_str!("../../templates/k8s/pdb.yaml")),
    (
        "service-preview.yaml",
        include_str!("../../templates/k8s/service-preview.yaml"),
    ),
    (
        "ingress.yaml",
        include_str!("../../templates/k8s/ingress.yaml"),
    ),
];

pub const DEPLOY_WORKFLOW: &str = include_str!("../../workflows/deploy.yaml");

pub fn k8s(name: &str) -> Option<&'static str> {
    K8S.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// CI templates `pake init` writes (path relative to the project).
pub const CI: &[(&str, &str)] = &[(
    ".github/workflows/pake.yml",
    include_str!("../../templates/ci/github-actions.yml"),
)];

/// Docker templates `pake init` writes (the guide's hardened image and compose file).
pub const DOCKER: &[(&str, &str)] = &[
    (
        "Dockerfile.production",
        include_str!("../../templates/docker/Dockerfile.production"),
    ),
    (
        ".dockerignore",
        include_str!("../../templates/docker/.dockerignore"),
    ),
    (
        "docker-compose.secure.yml",
        include_str!("../../templates/docker/docker-compose.secure.yml"),
    ),
];
