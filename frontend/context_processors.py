from catalog.access import user_roles


def roles(request):
    """`roles.admin`, `roles.researcher`, `roles.annotator`, `roles.signed_in`: what the navigation offers."""
    user = getattr(request, "user", None)
    return {"roles": user_roles(user) if user is not None else {}}
