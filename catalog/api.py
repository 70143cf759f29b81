"""REST API of the foundation: the class list, datasets and clips (read for researchers, write for admins)."""

from django.urls import include, path
from rest_framework import routers, serializers, viewsets

from catalog.access import ResearcherRead
from catalog.models import ClassRelation, Clip, Dataset, TaxonomyClass
from catalog.selectors.clips import clip_media_url


class TaxonomyClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaxonomyClass
        fields = ["index", "name", "mid"]


class ClassRelationSerializer(serializers.ModelSerializer):
    source = serializers.CharField(source="source.name")
    target = serializers.CharField(source="target.name")

    class Meta:
        model = ClassRelation
        fields = ["kind", "source", "target"]


class DatasetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "description",
            "budget_usd",
            "batch_size",
            "gold_per_batch",
            "annotations_per_clip",
            "reject_below",
            "block_floor",
            "block_after",
            "min_hourly_wage_usd",
            "created_at",
        ]


class ClipSerializer(serializers.ModelSerializer):
    dataset = serializers.SlugRelatedField(slug_field="name", read_only=True)
    original_labels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    media = serializers.SerializerMethodField()

    class Meta:
        model = Clip
        fields = [
            "id",
            "dataset",
            "video_id",
            "duration",
            "has_audio",
            "has_video",
            "is_gold",
            "original_labels",
            "media",
        ]

    def get_media(self, clip) -> str:
        return clip_media_url(clip, self.context.get("request"))


class TaxonomyClassViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [ResearcherRead]
    queryset = TaxonomyClass.objects.order_by("index")
    serializer_class = TaxonomyClassSerializer
    pagination_class = None


class ClassRelationViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [ResearcherRead]
    queryset = ClassRelation.objects.select_related("source", "target")
    serializer_class = ClassRelationSerializer
    pagination_class = None


class DatasetViewSet(viewsets.ModelViewSet):
    queryset = Dataset.objects.all()
    serializer_class = DatasetSerializer
    permission_classes = [ResearcherRead]
    lookup_field = "name"


class ClipViewSet(viewsets.ReadOnlyModelViewSet):
    """Clips with `is_gold` and their original labels: researchers and admins only (never annotators)."""

    permission_classes = [ResearcherRead]
    serializer_class = ClipSerializer

    def get_queryset(self):
        qs = Clip.objects.select_related("dataset").prefetch_related("original_labels").order_by("dataset", "video_id")
        dataset = self.request.query_params.get("dataset")
        return qs.filter(dataset__name=dataset) if dataset else qs


class APIRoot(routers.APIRootView):
    permission_classes = [ResearcherRead]


class Router(routers.DefaultRouter):
    APIRootView = APIRoot


router = Router()
router.register("classes", TaxonomyClassViewSet, basename="class")
router.register("class-relations", ClassRelationViewSet, basename="class-relation")
router.register("datasets", DatasetViewSet, basename="dataset")
router.register("clips", ClipViewSet, basename="clip")

urlpatterns = [path("", include(router.urls))]
